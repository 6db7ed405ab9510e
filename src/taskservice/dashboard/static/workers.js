// The workers panel: live workers first, gone ones greyed out, heartbeat ages that tick; each one's kind
// (worker or agent), the task types it runs and the tasks it runs now, as `task-cli workers` shows.

import { call } from "./api.js";
import { ago, h, reconcile, setText, timeAgo } from "./ui.js";

const TASKS_SHOWN = 5; // as the CLI: the first few running tasks of a worker, then "+N"
const RUNNING_READ = 100; // one page of running tasks says who runs what; a busier fleet shows "+N"

export class Workers {
  /** `onOpen(id)` opens a task the panel shows running. */
  constructor({ onSummary, onOpen }) {
    Object.assign(this, { onSummary, onOpen });
    this.body = document.getElementById("workers-body");
  }

  async refresh() {
    const { workers = [] } = await call("ListWorkers");
    // Only when something runs: which tasks, from the tasks' own worker field.
    const held = new Map();
    if (workers.some((w) => w.alive && w.running > 0)) {
      const { tasks = [] } = await call("ListTasks", { status: "RUNNING", limit: RUNNING_READ });
      for (const t of tasks) held.set(t.workerId, [...(held.get(t.workerId) || []), t.id]);
    }
    reconcile(this.body, workers, (w) => w.id, () => this.createRow(), (row, w) => this.updateRow(row, w, held.get(w.id) || []));
    if (!workers.length) {
      this.body.append(h("tr", { class: "empty" }, h("td", { colspan: 4 }, "No worker has registered yet.")));
    }
    const live = workers.filter((w) => w.alive);
    const summary = {
      alive: live.length,
      slots: live.reduce((n, w) => n + w.concurrency, 0),
      running: live.reduce((n, w) => n + w.running, 0),
    };
    setText(document.getElementById("workers-summary"), `${summary.alive} live · ${workers.length - summary.alive} gone`);
    this.onSummary(summary);
  }

  createRow() {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    return h("tr", {},
      cell("worker", "Worker", h("span", { class: "mono id" }),
        h("span", { class: "where muted" }, h("span", { class: "kind" }), h("span", {})),
        h("span", { class: "types" })),
      cell("num load", "Running", h("span", { class: "count" }), h("span", { class: "running-tasks" })),
      cell("", "Heartbeat"), cell("", "State"));
  }

  updateRow(row, w, running) {
    const [worker, load, beat, state] = row.children;
    const [id, where, types] = worker.children;
    const kind = w.kind || "worker"; // a server from before agents says nothing: a worker
    setText(id, w.id);
    setText(where.firstChild, kind);
    where.firstChild.title = kind === "agent" ? "Fed by a server's dispatch stream" : "Claims its tasks from PostgreSQL";
    setText(where.lastChild, `${w.host} · pid ${w.pid}`);
    setText(types, w.taskTypes?.length ? `runs ${w.taskTypes.join(", ")}` : "runs every type");
    worker.title = `Started ${new Date(w.startedAt).toLocaleString()}`;
    setText(load.firstChild, `${w.alive ? w.running : "—"} / ${w.concurrency}`);
    load.title = `${w.alive ? w.running : "no"} tasks running; concurrency ${w.concurrency}`;
    this.renderRunning(load.lastChild, w.alive ? running : [], w.alive ? w.running : 0);
    if (beat.dataset.at !== w.lastHeartbeatAt) {
      beat.dataset.at = w.lastHeartbeatAt;
      beat.replaceChildren(timeAgo(w.lastHeartbeatAt));
    }
    const label = w.alive ? "Live" : w.stoppedAt ? "Stopped" : "Gone";
    if (state.textContent !== label) {
      state.replaceChildren(h("span", { class: `pill ${w.alive ? "live" : "gone"}` }, label));
      state.title = w.stoppedAt ? `Stopped ${ago(w.stoppedAt)}` : w.alive ? "" : "No heartbeat lately";
    }
    row.classList.toggle("gone", !w.alive);
  }

  /** The ids of the tasks a worker runs, each a button that opens it; "+N" for the ones not shown. */
  renderRunning(node, ids, count) {
    const shown = [...ids].sort((a, b) => a - b).slice(0, TASKS_SHOWN);
    const more = Math.max(count, ids.length) - shown.length;
    const key = `${shown.join(",")}+${more}`;
    if (node.dataset.key === key) return;
    node.dataset.key = key;
    node.replaceChildren(
      ...shown.map((id) => h("button", { class: "link mono", type: "button", title: `Open task #${id}`, onclick: () => this.onOpen(id) }, `#${id}`)),
      ...(more > 0 ? [h("span", { class: "muted" }, `+${more}`)] : []));
  }
}

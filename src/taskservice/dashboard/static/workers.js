// The workers panel: live workers first, gone ones greyed out, heartbeat ages that tick; each one's kind
// (worker or agent), the task types it runs and the tasks it runs now, as `task-cli workers` shows.

import { call } from "./api.js";
import { absolute, ago, duration, h, outcomeBadge, reconcile, setText, timeAgo } from "./ui.js";

const TASKS_SHOWN = 5; // as the CLI: the first few running tasks of a worker, then "+N"
const RUNNING_READ = 100; // one page of running tasks says who runs what; a busier fleet shows "+N"

export class Workers {
  /** `onOpen(id)` opens a task the panel shows running, `onOpenWorker(id)` a worker's page. */
  constructor({ onSummary, onOpen, onOpenWorker }) {
    Object.assign(this, { onSummary, onOpen, onOpenWorker });
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
      cell("worker", "Worker", h("button", { class: "link mono id", type: "button", onclick: (e) => this.onOpenWorker(e.currentTarget.textContent) }),
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
    id.title = `Open worker ${w.id}: its attempts and failures`;
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

// -- one worker's page: what it is, what it runs, its latest attempts and failures (GetWorker) --------

export class WorkerPage {
  /** `onOpen(id)` opens a task of its attempts; `onClose()` hears the page close. */
  constructor({ onOpen, onClose, onError }) {
    Object.assign(this, { onOpen, onClose, onError });
    this.dialog = document.getElementById("worker-page");
    this.id = "";
    this.dialog.querySelector("[data-close]").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => {
      this.id = "";
      this.onClose();
    });
  }

  async open(id) {
    this.id = id;
    setText(document.getElementById("worker-page-title"), id);
    this.dialog.dataset.state = "loading";
    if (!this.dialog.open) this.dialog.showModal();
    const page = await call("GetWorker", { id });
    if (this.id !== id) return; // another worker was opened meanwhile
    this.render(page);
    this.dialog.dataset.state = "ready";
  }

  render({ worker: w, attempts = [], failures = [] }) {
    const kind = w.kind || "worker";
    const label = w.alive ? "Live" : w.stoppedAt ? "Stopped" : "Gone";
    document.getElementById("worker-page-state").replaceChildren(
      h("span", { class: `pill ${w.alive ? "live" : "gone"}` }, label));
    const fields = [
      ["Kind", kind === "agent" ? "agent (fed by a server's dispatch stream)" : "worker (claims from PostgreSQL)"],
      ["Host", `${w.host} · pid ${w.pid}`],
      ["Version", w.version || "not said (an earlier release)"],
      ["Started", absolute(w.startedAt)],
      ["Last heartbeat", w.lastHeartbeatAt ? ago(w.lastHeartbeatAt) : "—"],
      ...(w.stoppedAt ? [["Stopped", absolute(w.stoppedAt)]] : []),
      ["Runs", w.taskTypes?.length ? w.taskTypes.join(", ") : "every type"],
      ["Queues", w.queues?.length ? w.queues.join(", ") : "every queue"],
      ["Concurrency", `${w.alive ? w.running : 0} running of ${w.concurrency}`],
    ];
    document.getElementById("worker-page-fields").replaceChildren(
      ...fields.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    const taskCell = (a) => h("td", { "data-label": "Task" },
      h("button", { class: "link", type: "button", title: `Open task #${a.taskId}`, onclick: () => this.onOpen(Number(a.taskId)) },
        `#${a.taskId}`), " ", h("span", { class: "muted" }, a.taskName));
    const errorCell = (a) => h("td", { class: "error", "data-label": "Error", title: a.error || "" }, a.error || "—");
    const failuresBody = document.getElementById("worker-failures");
    failuresBody.replaceChildren(...failures.map((a) => h("tr", { dataset: { key: a.id } },
      taskCell(a), h("td", { "data-label": "Type" }, a.taskType), h("td", { "data-label": "Finished" }, absolute(a.finishedAt)),
      h("td", { "data-label": "Outcome" }, outcomeBadge(a.outcome)), errorCell(a))));
    if (!failures.length) failuresBody.append(h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No failure among its latest attempts.")));
    const attemptsBody = document.getElementById("worker-attempts");
    attemptsBody.replaceChildren(...attempts.map((a) => h("tr", { dataset: { key: a.id } },
      taskCell(a), h("td", { "data-label": "Type" }, a.taskType), h("td", { "data-label": "Started" }, absolute(a.startedAt)),
      h("td", { class: "num", "data-label": "Duration" }, duration(a.durationSeconds || 0)),
      h("td", { "data-label": "Outcome" }, outcomeBadge(a.outcome)), errorCell(a))));
    if (!attempts.length) attemptsBody.append(h("tr", { class: "empty" }, h("td", { colspan: 6 }, "It has run no attempt yet.")));
  }
}

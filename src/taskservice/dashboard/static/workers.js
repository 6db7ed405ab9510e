// The workers panel: live workers first, gone ones greyed out, heartbeat ages that tick.

import { call } from "./api.js";
import { ago, h, reconcile, setText, timeAgo } from "./ui.js";

export class Workers {
  constructor({ onSummary }) {
    this.onSummary = onSummary;
    this.body = document.getElementById("workers-body");
  }

  async refresh() {
    const { workers = [] } = await call("ListWorkers");
    reconcile(this.body, workers, (w) => w.id, () => this.createRow(), (row, w) => this.updateRow(row, w));
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
      cell("worker", "Worker", h("span", { class: "mono" }), h("span", { class: "where muted" })),
      cell("num", "Running / slots"), cell("", "Heartbeat"), cell("", "State"));
  }

  updateRow(row, w) {
    const [worker, load, beat, state] = row.children;
    setText(worker.firstChild, w.id);
    setText(worker.lastChild, `${w.host} · pid ${w.pid}`);
    worker.title = `Started ${new Date(w.startedAt).toLocaleString()}; ${w.taskTypes.length ? `runs ${w.taskTypes.join(", ")}` : "runs every type"}`;
    setText(load, `${w.alive ? w.running : "—"} / ${w.concurrency}`);
    load.title = `${w.alive ? w.running : "no"} tasks running; concurrency ${w.concurrency}`;
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
}

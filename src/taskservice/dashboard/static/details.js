// The details drawer of one task: every field, the payload, the timeline and the attempts, kept live;
// the schedule that created it (a link to its row) and the limit it counts under, when it has them.

import { call } from "./api.js";
import { ACTIVE, FINISHED, absolute, badge, duration, h, outcomeBadge, parseTime, reconcile, setText, statusLabel, throttle, timeAgo } from "./ui.js";

const FIELDS = [
  ["ID", (t) => `#${t.id}`],
  ["Name", (t) => t.name],
  ["Type", (t) => t.type],
  ["Status", (t) => statusLabel(t.status)],
  ["Description", (t) => t.description || "—"],
  ["Priority", (t) => t.priority],
  ["Attempts", (t) => t.attempts],
  ["Retries used", (t) => `${t.retries} of ${t.maxRetries}`],
  ["Timeout", (t) => duration(t.timeoutSeconds)],
  ["Created", (t) => absolute(t.createdAt)],
  ["Updated", (t) => absolute(t.updatedAt)],
  ["Due", (t) => (t.status === "WAITING" ? "once the tasks it depends on succeeded" : ACTIVE.has(t.status) ? absolute(t.runAt) : "—")],
  ["Worker", (t) => t.workerId || "—"],
  ["Idempotency key", (t) => t.idempotencyKey || "—"],
];

/** The limit a task counts under and its key there, as `task get` says it: "type send_email, key 42",
 * "type send_email", "key 42 (no limit)"; empty: neither. */
function limitText(task) {
  const key = task.limitKey ? `key ${task.limitKey}` : "";
  if (!task.limitScope) return key ? `${key} (no limit)` : "";
  const scope = task.limitScope.replace(":", " ");
  return key ? `${scope}, ${key}` : scope;
}

/** A field of the list that only some tasks have: its term and its value, hidden together. */
function optionalField(label) {
  const dt = h("dt", { hidden: true }, label);
  const dd = h("dd", { hidden: true });
  document.getElementById("details-fields").append(dt, dd);
  return { dd, show: (shown) => { dt.hidden = !shown; dd.hidden = !shown; } };
}

export class Details {
  /** `onShowSchedule(id)` goes to the schedule that created the open task. */
  constructor({ onAction, onClose, onShowSchedule, onError }) {
    Object.assign(this, { onAction, onClose, onShowSchedule, onError });
    this.dialog = document.getElementById("details");
    this.task = null;
    this.id = 0;
    this.values = FIELDS.map(([label]) => {
      const dd = h("dd", {});
      document.getElementById("details-fields").append(h("dt", {}, label), dd);
      return dd;
    });
    this.scheduleField = optionalField("Schedule");
    this.limitField = optionalField("Limit");
    this.schedule = null; // the open task's schedule, read once: {id, found} (found null: deleted)
    this.refresh = throttle(() => this.load().catch(this.onError), 300);
    this.dialog.addEventListener("close", () => {
      this.id = 0;
      this.onClose();
    });
    this.dialog.querySelector("[data-close]").addEventListener("click", () => this.dialog.close());
    document.getElementById("details-retry").addEventListener("click", () => this.onAction("retry", this.task));
    document.getElementById("details-cancel").addEventListener("click", () => this.onAction("cancel", this.task));
  }

  async open(id) {
    if (this.id !== id) {
      this.id = id;
      this.task = null;
      this.schedule = null;
      for (const node of ["details-timeline", "details-attempts"]) document.getElementById(node).replaceChildren();
      setText(document.getElementById("details-title"), `Task #${id}`);
      document.getElementById("details-status").replaceChildren();
    }
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  async load() {
    const id = this.id;
    if (!id) return;
    let task, history, executions;
    try {
      [task, { history = [] }, { executions = [] }] = await Promise.all([
        call("GetTask", { id }), call("GetTaskHistory", { id }), call("ListTaskExecutions", { id }),
      ]);
    } catch (error) {
      if (error.code === "not_found" && id === this.id) this.dialog.close(); // e.g. an old link
      throw error;
    }
    if (id !== this.id) return; // another task was opened meanwhile
    await this.loadSchedule(Number(task.scheduleId || 0));
    if (id !== this.id) return;
    this.render(task, history, executions);
  }

  /** The schedule that created the open task (by its id, once per task); found null when deleted since. */
  async loadSchedule(scheduleId) {
    if (!scheduleId || this.schedule?.id === scheduleId) return;
    try {
      const { schedule } = await call("GetSchedule", { id64: String(scheduleId) });
      this.schedule = { id: scheduleId, found: schedule };
    } catch (error) {
      if (error.code !== "not_found") throw error;
      this.schedule = { id: scheduleId, found: null };
    }
  }

  onEvent(event) {
    if (event.taskId === this.id) this.refresh();
  }

  render(task, history, executions) {
    const changed = this.task?.status !== task.status;
    this.task = task;
    setText(document.getElementById("details-title"), `#${task.id} ${task.name}`);
    if (changed) document.getElementById("details-status").replaceChildren(badge(task.status));
    // Why a waiting task is not picked up: no live worker runs its type.
    const waiting = document.getElementById("details-waiting");
    setText(waiting, task.waitingReason || "");
    waiting.hidden = !task.waitingReason;
    FIELDS.forEach(([, value], i) => setText(this.values[i], value(task)));
    this.renderSchedule(task);
    const limit = limitText(task);
    this.limitField.show(Boolean(limit));
    setText(this.limitField.dd, limit);
    setText(document.getElementById("details-payload"), JSON.stringify(task.payload?.parameters ?? {}, null, 2));
    document.getElementById("details-retry").hidden = !FINISHED.has(task.status);
    document.getElementById("details-cancel").hidden = !ACTIVE.has(task.status);

    reconcile(document.getElementById("details-timeline"), history, (e) => e.id,
      (e) => h("li", { dataset: { status: e.status } }, badge(e.status),
        h("span", { class: "timeline-text" }, e.details || ""),
        h("span", { class: "timeline-time" }, timeAgo(e.createdAt), h("span", { class: "muted" }, absolute(e.createdAt)))),
      () => {});

    reconcile(document.getElementById("details-attempts"), executions, (e) => e.id,
      () => h("tr", {}, ...["num", "mono", "", "num duration", "", "error", "result"].map((cls) => h("td", { class: cls }))),
      (row, e) => this.updateAttempt(row, e));
    if (!executions.length) {
      document.getElementById("details-attempts").append(h("tr", { class: "empty" }, h("td", { colspan: 7 }, "No attempt yet.")));
    }
  }

  /** As `task get` says it: "nightly, tick Dec 6, 2026, 2:00:00 AM" with the name a link to its row;
   * "nightly (triggered by hand)" without a tick; "schedule 12 (deleted)" when it is gone. */
  renderSchedule(task) {
    const { dd, show } = this.scheduleField;
    const scheduleId = Number(task.scheduleId || 0);
    show(Boolean(scheduleId));
    const found = scheduleId && this.schedule?.found;
    const key = `${scheduleId}|${found ? found.name : ""}|${task.scheduleTick || ""}`;
    if (!scheduleId || dd.dataset.key === key) return;
    dd.dataset.key = key;
    const tick = task.scheduleTick ? `, tick ${absolute(task.scheduleTick)}` : " (triggered by hand)";
    dd.replaceChildren(...(found
      ? [h("button", { class: "link", type: "button", title: `Show schedule ${found.name}`, onclick: () => this.onShowSchedule(scheduleId) }, found.name), tick]
      : [`schedule ${scheduleId} (deleted)`, tick]));
  }

  updateAttempt(row, e) {
    const [attempt, worker, started, took, outcome, error, result] = row.children;
    row.execution = e;
    setText(attempt, e.attempt);
    setText(worker, e.workerId);
    if (started.dataset.at !== e.startedAt) {
      started.dataset.at = e.startedAt;
      started.replaceChildren(timeAgo(e.startedAt));
      started.title = absolute(e.startedAt);
    }
    if (outcome.dataset.outcome !== e.outcome) {
      outcome.dataset.outcome = e.outcome;
      outcome.replaceChildren(outcomeBadge(e.outcome));
    }
    this.updateError(error, e);
    setText(result, e.result === null || e.result === undefined ? "—" : JSON.stringify(e.result));
    this.tickDuration(row);
  }

  /** The one-line error and, for a failed attempt, a disclosure with its traceback (built once, so a
   * live refresh leaves it open). */
  updateError(cell, e) {
    const shown = `${e.error || ""}\u0000${e.traceback || ""}`;
    if (cell.shown === shown) return;
    cell.shown = shown;
    const text = h("span", { class: "error-text" }, e.error || "—");
    const traceback = e.traceback && h("details", { class: "traceback" },
      h("summary", {}, "Traceback"),
      h("pre", { class: "code", tabindex: 0, "aria-label": `Traceback of attempt ${e.attempt}` }, e.traceback));
    cell.replaceChildren(text, traceback);
  }

  tickDuration(row) {
    const e = row.execution;
    const running = e.outcome === "running";
    const seconds = running ? (Date.now() - parseTime(e.startedAt)) / 1000 : e.durationSeconds;
    setText(row.children[3], running ? `${Math.max(0, Math.floor(seconds))} s…` : duration(seconds));
  }

  /** Called every second: running attempts count up. */
  tick() {
    if (!this.dialog.open) return;
    for (const row of document.getElementById("details-attempts").rows) if (row.execution) this.tickDuration(row);
  }
}

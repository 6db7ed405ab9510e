// The details drawer of one task: every field, the payload, the timeline and the attempts, kept live;
// the schedule that created it (a link to its row) and the limit it counts under, when it has them; a
// workflow step's workflow and step (a link to its graph), the task that spawned it, and the tasks it
// depends on (each a link to its details).

import { call } from "./api.js";
import { ACTIVE, FINISHED, absolute, badge, duration, h, isStep, outcomeBadge, parseTime, reconcile, setText, statusLabel, throttle, timeAgo } from "./ui.js";

const FIELDS = [
  ["ID", (t) => `#${t.id}`],
  ["Name", (t) => t.name],
  ["Type", (t) => (t.baseImage ? `${t.type} (container ${t.baseImage})` : t.type)],
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
  /** `onShowSchedule(id)` goes to the schedule that created the open task, `onShowWorkflow(id)` to the
   * graph of the workflow it is a step of, `onOpen(id)` to another task (one it depends on). */
  constructor({ onAction, onClose, onOpen, onOpenWorker, onShowSchedule, onShowWorkflow, onError }) {
    Object.assign(this, { onAction, onClose, onOpen, onOpenWorker, onShowSchedule, onShowWorkflow, onError });
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
    this.workflowField = optionalField("Workflow");
    this.spawnedField = optionalField("Spawned by");
    this.dependsField = optionalField("Depends on");
    this.traceField = optionalField("Trace");
    this.traceUrl = ""; // TRACE_UI_URL, {trace_id} standing for the id: set by app.js
    this.schedule = null; // the open task's schedule, read once: {id, found} (found null: deleted)
    // The open task's workflow: {id, found: GetWorkflowResponse} (found null: gone), read once, and
    // again when the task depends on a task it does not name (a child spawned since).
    this.workflow = null;
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
      this.workflow = null;
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
    await Promise.all([this.loadSchedule(Number(task.scheduleId || 0)), this.loadWorkflow(task)]);
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

  /** The workflow the task is a step of: its name, and its steps' names for the tasks it depends on. */
  async loadWorkflow(task) {
    const workflowId = String(task.workflowId || "0");
    if (workflowId === "0") return;
    const known = this.workflow?.id === workflowId
      && [task.spawnedBy, ...(task.dependencies || [])].every((id) => !Number(id) || this.stepOf(id));
    if (known) return;
    try {
      this.workflow = { id: workflowId, found: await call("GetWorkflow", { id: workflowId }) };
    } catch (error) {
      if (error.code !== "not_found") throw error;
      this.workflow = { id: workflowId, found: null };
    }
  }

  /** The step of the open task's workflow whose task is `taskId`; undefined: none (or not known). */
  stepOf(taskId) {
    return this.workflow?.found?.steps?.find((s) => String(s.taskId) === String(taskId));
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
    this.renderWorkflow(task);
    this.renderTrace(task.traceId || "");
    const limit = limitText(task);
    this.limitField.show(Boolean(limit));
    setText(this.limitField.dd, limit);
    setText(document.getElementById("details-payload"), JSON.stringify(task.payload?.parameters ?? {}, null, 2));
    // A step is retried with its workflow (its link is in the fields), never alone.
    document.getElementById("details-retry").hidden = !FINISHED.has(task.status) || isStep(task);
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

  /** The trace its attempts continue: its id, a link to the trace viewer when TRACE_UI_URL is set. */
  renderTrace(traceId) {
    this.traceField.show(Boolean(traceId));
    if (!traceId || this.traceField.dd.dataset.key === `${traceId} ${this.traceUrl}`) return;
    this.traceField.dd.dataset.key = `${traceId} ${this.traceUrl}`;
    const href = this.traceUrl && this.traceUrl.replaceAll("{trace_id}", encodeURIComponent(traceId));
    this.traceField.dd.replaceChildren(
      href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "mono" }, traceId) : h("span", { class: "mono" }, traceId),
    );
  }

  /** "nightly-etl (#12), step load" with the name a link to its graph; the task that spawned it; the
   * tasks it depends on, each "#41 extract" (its step's name), a link to its details. */
  renderWorkflow(task) {
    const workflowId = String(task.workflowId || "0");
    const found = this.workflow?.id === workflowId ? this.workflow.found : null;
    const link = (id) => {
      const step = this.stepOf(id);
      return h("button", { class: "link mono", type: "button", title: `Open task #${id}`, onclick: () => this.onOpen(Number(id)) },
        `#${id}`, step ? h("span", { class: "step-name" }, ` ${step.name}`) : null);
    };
    const inWorkflow = workflowId !== "0";
    this.workflowField.show(inWorkflow);
    const name = found?.workflow?.name || "";
    const key = `${workflowId}|${name}|${task.step || ""}`;
    if (inWorkflow && this.workflowField.dd.dataset.key !== key) {
      this.workflowField.dd.dataset.key = key;
      this.workflowField.dd.replaceChildren(
        h("button", { class: "link", type: "button", title: `Show the graph of workflow #${workflowId}`, onclick: () => this.onShowWorkflow(workflowId) },
          name || `workflow #${workflowId}`),
        name ? ` (#${workflowId})` : "", task.step ? `, step ${task.step}` : "");
    }
    const spawnedBy = String(task.spawnedBy || "0");
    this.spawnedField.show(spawnedBy !== "0");
    const dependencies = task.dependencies || [];
    this.dependsField.show(dependencies.length > 0);
    const names = JSON.stringify([spawnedBy, dependencies, dependencies.map((id) => this.stepOf(id)?.name || "")]);
    if (this.dependsField.dd.dataset.key === names) return;
    this.dependsField.dd.dataset.key = names;
    this.spawnedField.dd.replaceChildren(...(spawnedBy !== "0" ? [link(spawnedBy)] : []));
    this.dependsField.dd.replaceChildren(h("span", { class: "dependencies" }, ...dependencies.map(link)));
  }

  updateAttempt(row, e) {
    const [attempt, worker, started, took, outcome, error, result] = row.children;
    row.execution = e;
    setText(attempt, e.attempt);
    if (worker.dataset.id !== e.workerId) { // its worker's page opens from it
      worker.dataset.id = e.workerId;
      worker.replaceChildren(h("button", { class: "link mono", type: "button", title: `Open worker ${e.workerId}`, onclick: () => this.onOpenWorker(e.workerId) }, e.workerId));
    }
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

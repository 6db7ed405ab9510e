// The dashboard's entry point: builds the views, keeps the event stream connected, routes events.

import { AUTH_SERVICE, call, watchEvents } from "./api.js";
import { CreateForm } from "./create.js";
import { Details } from "./details.js";
import { Overview, RANGES } from "./overview.js";
import { TaskTable } from "./tasks.js";
import { confirmAction, notify, throttle, tickTimes } from "./ui.js";
import { Queues } from "./queues.js";
import { Schedules } from "./schedules.js";
import { WorkflowGraph } from "./graph.js";
import { WorkerPage, Workers } from "./workers.js";
import { Workflows, actOnWorkflow } from "./workflows.js";

// The event stream sends a keep-alive every 15 s; this much silence means the connection is gone.
const SILENCE_MS = 20000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];

// -- state in the address (filters, page, open task and workflow), so a reload or a link shows the same --

/** The task list's order in the address: a column and a direction ("duration_desc"); "asc", the
 * address of an older dashboard, is creation's; anything else the default (newest first). */
function readOrder(value) {
  if (value === "asc") return "created_asc";
  return /^(created|name|type|status|duration|worker|error)_(asc|desc)$/.test(value) && value !== "created_desc" ? value : "";
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return {
    status: p.get("status") || "",
    type: p.get("type") || "",
    name: p.get("q") || "",
    size: [10, 20, 50, 100].includes(Number(p.get("size"))) ? Number(p.get("size")) : 20,
    page: Math.max(0, Number(p.get("page") || 1) - 1) || 0,
    task: Number(p.get("task")) || 0,
    order: readOrder(p.get("order") || ""),
    range: RANGES[p.get("range")] ? Number(p.get("range")) : 900,
    worker: p.get("worker") || "",
    workflow: /^[1-9]\d*$/.test(p.get("workflow") || "") ? p.get("workflow") : "",
  };
}

let openWorkflow = ""; // the workflow whose graph is open, in the address beside the open task
let openWorker = ""; // the worker whose page is open
let chartRange = 900; // the overview's time range, in seconds

function writeHash(state, task) {
  const p = new URLSearchParams();
  if (state.status) p.set("status", state.status);
  if (state.type) p.set("type", state.type);
  if (state.name) p.set("q", state.name);
  if (state.order) p.set("order", state.order);
  if (chartRange !== 900) p.set("range", chartRange);
  if (openWorker) p.set("worker", openWorker);
  if (state.size !== 20) p.set("size", state.size);
  if (state.page) p.set("page", state.page + 1);
  if (openWorkflow) p.set("workflow", openWorkflow);
  if (task) p.set("task", task);
  const hash = p.toString();
  history.replaceState(null, "", hash ? `#${hash}` : location.pathname);
}

// -- errors: a notice, except while the banner already says the server is unreachable ------------

let connected = false;

function report(error) {
  if (!connected && error.code === "unavailable") return;
  notify(error.message || String(error), "error");
}

// -- views -------------------------------------------------------------------------------------------

const initial = readHash();
const state = { status: initial.status, type: initial.type, name: initial.name, size: initial.size, page: initial.page, order: initial.order };
chartRange = initial.range;

async function act(kind, task) {
  if (!task) return;
  const retry = kind === "retry";
  const ok = await confirmAction({
    title: retry ? `Retry task #${task.id}?` : `Cancel task #${task.id}?`,
    message: retry
      ? `“${task.name}” is ${task.status.toLowerCase()}. It will be queued again with a fresh retry budget.`
      : `“${task.name}” is ${task.status.toLowerCase()}. ${task.status === "RUNNING" ? "Its attempt is stopped and it" : "It"} will not run.`,
    confirm: retry ? "Retry task" : "Cancel task",
    danger: !retry,
  });
  if (!ok) return;
  try {
    await call(retry ? "RetryTask" : "CancelTask", { id: task.id, reason: "from the dashboard" });
    notify(retry ? `Task #${task.id} queued again.` : `Task #${task.id} cancelled.`);
  } catch (error) {
    report(error);
  }
  await Promise.all([tasks.load(), details.load(), overview.refreshCounts()]).catch(report);
}

// The bulk actions: their words, and what each does to the tasks it does not apply to.
const BULK = {
  cancel: { method: "CancelTasks", verb: "Cancel", done: "Cancelled", danger: true,
    note: "Queued and retrying ones will not run; running ones are stopped. Finished ones stay as they are." },
  retry: { method: "RetryTasks", verb: "Retry", done: "Retried", danger: false,
    note: "Finished ones are queued again with a fresh retry budget. The others stay as they are." },
  delete: { method: "DeleteTasks", verb: "Delete", done: "Deleted", danger: true,
    note: "Finished ones are deleted with their history and attempts: this cannot be undone. Queued and running ones are kept." },
};

const counted = (n) => `${n.toLocaleString()} ${n === 1 ? "task" : "tasks"}`;

/** A bulk action: count what it would act on (a dry run), ask with that count, then act in one call. */
async function actInBulk(kind, { ids, filter }) {
  const action = BULK[kind];
  const request = { ...(ids ? { ids } : { filter }), reason: "from the dashboard" };
  try {
    const { count = "0" } = await call(action.method, { ...request, dryRun: true });
    const n = Number(count);
    if (!n) {
      notify(`None of the selected tasks can be ${action.done.toLowerCase()}.`);
      return;
    }
    const ok = await confirmAction({
      title: `${action.verb} ${counted(n)}?`, message: action.note, confirm: `${action.verb} ${counted(n)}`, danger: action.danger,
    });
    if (!ok) return;
    let done = 0;
    for (;;) { // one call, or more when the server stopped one at its time limit
      const { count = "0", resumeToken = "" } = await call(action.method, request);
      done += Number(count);
      if (!resumeToken) break;
      request.resumeToken = resumeToken;
    }
    notify(`${action.done} ${counted(done)}.`);
    tasks.clearSelection();
  } catch (error) {
    report(error);
  }
  await Promise.all([tasks.load(), details.load(), overview.refreshCounts()]).catch(report);
}

const overview = new Overview({
  onError: report,
  range: chartRange,
  onRange: (seconds) => {
    chartRange = seconds;
    writeHash(state, details.id);
  },
  onPickStatus: (status) => tasks.showStatus(status).catch(report).then(() => document.getElementById("tasks").scrollIntoView({ behavior: "smooth" })),
  onPickWorkers: () => document.getElementById("workers").scrollIntoView({ behavior: "smooth" }),
});
const tasks = new TaskTable(state, {
  onOpen: (id) => openDetails(id),
  onOpenWorker: (id) => showWorker(id),
  onPayload: (task) => showPayload(task),
  onAction: act,
  onBulk: actInBulk,
  onChange: () => {
    writeHash(state, details.id);
    overview.select(state.status);
  },
  onError: report,
});
const details = new Details({
  onAction: act, onClose: () => writeHash(state, 0), onOpen: (id) => openDetails(id), onOpenWorker: (id) => showWorker(id),
  onShowSchedule: showSchedule, onShowWorkflow: showWorkflow, onError: report,
});
const workers = new Workers({ onSummary: (s) => overview.setWorkers(s), onOpen: (id) => openDetails(id), onOpenWorker: (id) => showWorker(id) });
const workerPage = new WorkerPage({
  onOpen: (id) => openDetails(id),
  onClose: () => {
    openWorker = "";
    writeHash(state, details.id);
  },
  onError: report,
});

/** A worker's page (from the workers panel or a task's row). */
function showWorker(id) {
  openWorker = id;
  writeHash(state, details.id);
  workerPage.open(id).catch(report);
}
const queues = new Queues({ onError: report });
const schedules = new Schedules({
  onOpen: (id) => openDetails(id),
  onChanged: () => Promise.all([tasks.load(), overview.refreshCounts()]).catch(report),
  onError: report,
});
const workflows = new Workflows({ onOpen: (id) => showWorkflow(id), onAction: actWorkflow, onError: report });
const graph = new WorkflowGraph({
  onOpenTask: (id) => openDetails(id),
  onAction: actWorkflow,
  onClose: () => {
    openWorkflow = "";
    writeHash(state, details.id);
  },
  onError: report,
});
const create = new CreateForm({
  onCreated: async (id) => {
    notify(`Task #${id} created.`);
    await Promise.all([tasks.load(), overview.refreshCounts()]).catch(report);
  },
});

/** Cancels or retries a workflow (from its row or its graph), then shows what that changed. */
async function actWorkflow(kind, workflow) {
  await actOnWorkflow(kind, workflow, report);
  await Promise.all([workflows.refresh(), graph.load(), tasks.load(), details.load(), overview.refreshCounts()]).catch(report);
}

/** A workflow's graph; from a task's details, the details close to show it. */
function showWorkflow(id) {
  if (details.dialog.open) details.dialog.close();
  openWorkflow = String(id);
  writeHash(state, 0);
  graph.open(id).catch(report);
}

function openDetails(id) {
  writeHash(state, id);
  details.open(id).catch(report);
}

/** From a task's details to the row of the schedule that created it (read again if made since). */
async function showSchedule(id) {
  document.getElementById("details").close();
  if (schedules.show(id)) return;
  await schedules.refresh().catch(report);
  if (!schedules.show(id)) notify(`Schedule ${id} is no longer listed: it was deleted.`, "error");
}

function showPayload(task) {
  const dialog = document.getElementById("payload-dialog");
  document.getElementById("payload-title").textContent = `Payload of task #${task.id}`;
  document.getElementById("payload-json").textContent = JSON.stringify(task.payload?.parameters ?? {}, null, 2);
  dialog.showModal();
}

document.getElementById("new-task").addEventListener("click", () => create.open());
for (const button of document.querySelectorAll("#payload-dialog [data-close]")) {
  button.addEventListener("click", () => document.getElementById("payload-dialog").close());
}
document.getElementById("payload-copy").addEventListener("click", () => {
  navigator.clipboard.writeText(document.getElementById("payload-json").textContent)
    .then(() => notify("Payload copied."), () => notify("Copying needs clipboard permission.", "error"));
});

async function loadTypes() {
  const { types = [], declarations = [] } = await call("ListTaskTypes");
  tasks.setTypes(types);
  create.setTypes(types, declarations);
}

/**
 * Everything the page shows, read again: after connecting, since events may have been missed.
 * Rejects only when the server is unreachable; other errors are shown and do not block the stream.
 */
function resync() {
  const reads = [loadAccount(), loadTypes(), overview.refreshCounts(), overview.loadStats(), tasks.load(),
    workers.refresh(), queues.refresh(), schedules.refresh(), workflows.refresh(), graph.load(), details.load()];
  return Promise.all(reads.map((read) => read.catch((error) => {
    if (error.code === "unavailable") throw error;
    report(error);
  })));
}

const refreshCounts = throttle(() => overview.refreshCounts().catch(report), 500);
const refreshWorkers = throttle(() => Promise.all([workers.refresh(), queues.refresh()]).catch(report), 1500);
// A tick creates a task, and a schedule's last run changes status: both arrive as events.
const refreshSchedules = throttle(() => schedules.refresh().catch(report), 1500);
// A step's change is its workflow's: statuses, counts, and when it finished.
const refreshWorkflows = throttle(() => workflows.refresh().catch(report), 1500);

function onEvent(event) {
  overview.onEvent(event);
  tasks.onEvent(event);
  details.onEvent(event);
  graph.onEvent(event);
  refreshCounts();
  refreshSchedules();
  refreshWorkflows();
  if (event.status !== "QUEUED") refreshWorkers(); // a worker's running count changed
}

// -- the connection: one stream, reconnected with backoff; the banner says when it is down ----------

const indicator = document.getElementById("connection");
const banner = document.getElementById("banner");
let failures = 0;
let wake = null;

function showConnection(kind, text) {
  indicator.dataset.state = kind;
  indicator.querySelector(".label").textContent = text;
}

async function connectOnce() {
  const abort = new AbortController();
  let silence;
  const alive = () => {
    clearTimeout(silence);
    silence = setTimeout(() => abort.abort(), SILENCE_MS);
  };
  alive();
  const stream = watchEvents({ signal: abort.signal, onEvent, onAlive: alive });
  stream.catch(() => {}); // handled below; this keeps an early failure from being "unhandled"
  try {
    // The stream's headers only come with its first message, so a successful resync (started after
    // the stream) is what shows that the server is back and nothing was missed.
    await resync();
    connected = true;
    failures = 0;
    banner.hidden = true;
    showConnection("live", "Live");
    await stream;
  } catch (error) {
    if (connected && error.name !== "AbortError") console.warn("event stream:", error.message);
  } finally {
    clearTimeout(silence);
    abort.abort();
  }
}

async function keepConnected() {
  for (;;) {
    await connectOnce();
    connected = false;
    const wait = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)] * (0.8 + Math.random() * 0.4);
    const until = Date.now() + wait;
    banner.hidden = false;
    const countdown = () => {
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      document.getElementById("banner-text").textContent = `Connection to the server lost. Reconnecting in ${s} s…`;
      showConnection("lost", "Offline");
    };
    countdown();
    const ticker = setInterval(countdown, 250);
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, wait);
    });
    clearInterval(ticker);
    document.getElementById("banner-text").textContent = "Connection to the server lost. Reconnecting…";
    showConnection("connecting", "Reconnecting…");
  }
}

document.getElementById("reconnect-now").addEventListener("click", () => wake?.());

// Relative times and running durations move on their own; counts and workers are re-read now and
// then for what events do not carry (queue depth over time, heartbeats).
setInterval(() => {
  tickTimes();
  details.tick();
}, 1000);
setInterval(() => {
  if (!connected) return;
  refreshCounts();
  refreshWorkers();
  refreshSchedules(); // next ticks move on
  refreshWorkflows();
  overview.refreshStats(); // the range moves on with the clock
}, 5000);

// Who the page acts for. Its rights decide which changes the panels offer (the server checks every call
// anyway); logged in (a session), it says as whom and offers to log out.
async function loadAccount() {
  const me = await call("WhoAmI", {}, AUTH_SERVICE);
  const rights = new Set(me.rights || []);
  queues.setRights(rights);
  schedules.setRights(rights);
  workflows.setRights(rights);
  graph.setRights(rights);
  if (me.kind !== "session") return;
  document.getElementById("account-name").textContent = `${me.name} (${me.role})`;
  document.getElementById("account").hidden = false;
}

// What the server keeps (RETENTION_*): a finished task that disappears was deleted, not lost.
// And where a task's trace is shown (TRACE_UI_URL), for the link on a task's trace id.
fetch("/retention")
  .then((response) => (response.ok ? response.json() : {}))
  .then(({ note, traceUrl }) => {
    document.getElementById("retention-note").textContent = note || "";
    details.traceUrl = traceUrl || "";
  })
  .catch(() => {});

openWorkflow = initial.workflow;
writeHash(state, initial.task);
overview.select(state.status);
if (initial.workflow) showWorkflow(initial.workflow);
if (initial.task) openDetails(initial.task);
if (initial.worker) showWorker(initial.worker);
keepConnected();

// Small shared pieces of the views: building DOM, statuses, times, notices, confirmation, throttling.

const SVG_TAGS = new Set(["svg", "path", "g", "line", "rect", "text", "title", "circle", "polyline", "defs", "marker"]);

/** h("td", {class: "x", onclick: f}, "text", child) — a DOM element; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const node = SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Sets a node's text only when it differs, so unchanged cells are not touched (no flicker). */
export function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

// Each status has a label and an icon as well as a colour, so it never relies on colour alone.
const ICONS = {
  WAITING: "M6 3h12M6 21h12M8 3c0 4 4 5 4 9s-4 5-4 9M16 3c0 4-4 5-4 9s4 5 4 9",
  QUEUED: "M12 7v5l3 2M12 3a9 9 0 1 0 0 18a9 9 0 0 0 0-18z",
  RUNNING: "M8 5.5v13l10.5-6.5z",
  RETRYING: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7",
  SUCCEEDED: "M5 12.5l4.5 4.5L19 7.5",
  FAILED: "M6 6l12 12M18 6L6 18",
  CANCELLED: "M12 3a9 9 0 1 0 0 18a9 9 0 0 0 0-18zM5.6 5.6l12.8 12.8",
  UNKNOWN: "M9.5 9a2.5 2.5 0 1 1 3.5 2.3c-.6.3-1 .9-1 1.6V14M12 17.5v.5",
};
// WAITING: a workflow step waiting for the steps it depends on (then QUEUED, as any task).
export const STATUSES = ["WAITING", "QUEUED", "RUNNING", "RETRYING", "SUCCEEDED", "FAILED", "CANCELLED"];
export const STATUS_NUMBERS = { QUEUED: 0, RUNNING: 1, FAILED: 2, SUCCEEDED: 3, UNKNOWN: 4, RETRYING: 6, CANCELLED: 7, WAITING: 8 };
export const ACTIVE = new Set(["WAITING", "QUEUED", "RUNNING", "RETRYING"]);
export const FINISHED = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

/** A workflow's step: retried with its workflow (RetryWorkflow), never alone (the server refuses: it
 * would not wait for its parents). */
export function isStep(task) {
  return String(task.workflowId || "0") !== "0";
}

export function statusLabel(status) {
  return status.charAt(0) + status.slice(1).toLowerCase();
}

// An attempt's outcome in words, as the API's value says it (`timed_out` is "timed out"), with what it
// means as a tooltip; the one place the dashboard turns an outcome into text.
const OUTCOMES = {
  running: ["running", "The attempt is running now."],
  succeeded: ["succeeded", "The attempt finished and returned a result."],
  failed: ["failed", "The task's code raised an error."],
  timed_out: ["timed out", "The attempt ran past the task's timeout and was stopped."],
  interrupted: ["interrupted", "Its worker stopped; the task went back to the queue."],
  lost: ["lost", "Its worker's lease expired (it crashed or hung)."],
  cancelled: ["cancelled", "The task was cancelled while this attempt ran."],
};

export function outcomeLabel(outcome) {
  return OUTCOMES[outcome]?.[0] ?? String(outcome || "").replaceAll("_", " ");
}

/** The outcome of an attempt: its words, coloured by kind, with its meaning as a tooltip. */
export function outcomeBadge(outcome) {
  return h("span", { class: `outcome o-${outcome}`, title: OUTCOMES[outcome]?.[1] }, outcomeLabel(outcome));
}

export function icon(path, cls = "icon") {
  return h("svg", { class: cls, viewBox: "0 0 24 24", "aria-hidden": "true" }, h("path", { d: path }));
}

export function statusIcon(status) {
  return icon(ICONS[status] || ICONS.UNKNOWN, status === "RUNNING" ? "icon pulse" : "icon");
}

/** The coloured pill with icon and label that shows a status everywhere. */
export function badge(status) {
  return h("span", { class: `badge s-${status.toLowerCase()}`, dataset: { status } },
    statusIcon(status), h("span", {}, statusLabel(status)));
}

// -- times -----------------------------------------------------------------------------------------

export function parseTime(text) {
  return text ? Date.parse(text) : NaN;
}

const ABSOLUTE = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const SHORT = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function absolute(text) {
  const t = parseTime(text);
  return Number.isNaN(t) ? "—" : ABSOLUTE.format(t);
}

export function short(text) {
  const t = parseTime(text);
  return Number.isNaN(t) ? "—" : SHORT.format(t);
}

/** "5 s", "3 min", "2 h", "4 d": a span of whole seconds, in its largest unit. */
function span(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** "5 s ago", "3 min ago", "2 h ago" from a server time (the server's times have second precision). */
export function ago(text, now = Date.now()) {
  const t = parseTime(text);
  if (Number.isNaN(t)) return "—";
  return `${span(Math.max(0, Math.round((now - t) / 1000)))} ago`;
}

/** "in 5 s", "in 2 h" until a server time still to come; "due now" once it has come. */
export function until(text, now = Date.now()) {
  const t = parseTime(text);
  if (Number.isNaN(t)) return "—";
  const s = Math.round((t - now) / 1000);
  return s > 0 ? `in ${span(s)}` : "due now";
}

export function duration(seconds) {
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  const rest = Math.round(seconds - m * 60);
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

/** A <time> showing a relative time with the absolute one as its tooltip; `tick()` refreshes them. */
export function timeAgo(text) {
  return h("time", { datetime: text, title: absolute(text), class: "ago", dataset: { ago: text } }, ago(text));
}

/** A <time> showing how long until a time to come, with the absolute time as its tooltip; ticks too. */
export function timeUntil(text) {
  return h("time", { datetime: text, title: absolute(text), class: "until", dataset: { until: text } }, until(text));
}

export function tickTimes(root = document) {
  const now = Date.now();
  for (const node of root.querySelectorAll("time[data-ago]")) setText(node, ago(node.dataset.ago, now));
  for (const node of root.querySelectorAll("time[data-until]")) setText(node, until(node.dataset.until, now));
}

// -- notices and confirmation -----------------------------------------------------------------------

/** A non-blocking notice in the corner; errors stay longer and are announced assertively. */
export function notify(message, kind = "info") {
  const list = document.getElementById("notices");
  const close = h("button", { class: "icon-btn", type: "button", "aria-label": "Dismiss notice" }, "×");
  const item = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  list.append(item);
  setTimeout(remove, kind === "error" ? 10000 : 5000);
  while (list.children.length > 4) list.firstElementChild.remove();
}

/** Asks in a modal dialog; resolves true when confirmed. Native <dialog> gives focus and Esc handling. */
export function confirmAction({ title, message, confirm, danger = false }) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("h2").textContent = title;
  dialog.querySelector("p").textContent = message;
  const ok = dialog.querySelector("[value=ok]");
  ok.textContent = confirm;
  ok.className = `btn ${danger ? "danger" : "primary"}`;
  dialog.returnValue = "";
  dialog.showModal();
  // Enter on a destructive action's dialog must not destroy: focus starts on the safe choice then.
  (danger ? dialog.querySelector("[value=cancel]") : ok).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- rows and timing --------------------------------------------------------------------------------

/**
 * Makes `tbody` show one row per item, in order, reusing each item's existing row: rows are updated in
 * place, never rebuilt, so nothing flickers and focus stays where it was.
 */
export function reconcile(tbody, items, key, create, update) {
  const existing = new Map([...tbody.querySelectorAll(":scope > tr[data-key]")].map((r) => [r.dataset.key, r]));
  const keep = new Set();
  items.forEach((item, index) => {
    const k = String(key(item));
    let row = existing.get(k);
    if (!row) {
      row = create(item);
      row.dataset.key = k;
    }
    update(row, item);
    keep.add(row);
    if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
  });
  for (const row of [...tbody.children]) if (!keep.has(row)) row.remove();
}

/** Runs `fn` at most once per `ms`, always once more after the last request, never two at a time. */
export function throttle(fn, ms) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(run, ms);
  };
  return schedule;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

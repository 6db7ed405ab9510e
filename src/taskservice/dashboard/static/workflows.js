// The workflows panel: the newest workflows, each with its status, how many of its steps succeeded (and a
// bar of them all by status) and when it was created; a click opens its graph. For those who may change
// them, Cancel (a running one) and Retry (a failed or cancelled one) in the row, as in its graph.

import { call } from "./api.js";
import { progressBar, progressText, otherCounts } from "./graph.js";
import { FINISHED, badge, confirmAction, h, notify, reconcile, setText, short, timeAgo } from "./ui.js";

const PAGE = 20;
const MOST = 1000; // ListWorkflows' own limit

export class Workflows {
  /** `onOpen(id)` opens a workflow's graph; `onAction(kind, workflow)` cancels or retries one. */
  constructor({ onOpen, onAction, onError }) {
    Object.assign(this, { onOpen, onAction, onError });
    this.body = document.getElementById("workflows-body");
    this.more = document.getElementById("workflows-more");
    this.limit = PAGE;
    this.workflows = [];
    this.mayChange = false; // until the caller's rights are known: no button that would be refused
    this.seq = 0;
    this.more.addEventListener("click", () => {
      this.limit = Math.min(MOST, this.limit + PAGE);
      this.refresh().catch(this.onError);
    });
    // A click anywhere on a row opens its graph, as Enter does on a focused row (not on its buttons).
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (!row?.workflow || event.target.closest("button, a")) return;
      this.onOpen(row.workflow.id);
    });
    this.body.addEventListener("keydown", (event) => {
      const row = event.target;
      if (event.key !== "Enter" || row.tagName !== "TR" || !row.workflow) return;
      event.preventDefault();
      this.onOpen(row.workflow.id);
    });
  }

  async refresh() {
    const seq = ++this.seq;
    const { workflows = [] } = await call("ListWorkflows", { limit: this.limit });
    if (seq === this.seq) this.render(workflows);
  }

  /** The caller's rights (WhoAmI): cancelling and retrying need `write`. */
  setRights(rights) {
    this.mayChange = rights.has("write");
    this.render(this.workflows);
  }

  render(workflows) {
    this.workflows = workflows;
    reconcile(this.body, workflows, (w) => w.id, () => this.createRow(), (row, w) => this.updateRow(row, w));
    if (!workflows.length) {
      this.body.append(h("tr", { class: "empty" }, h("td", { colspan: 5 },
        "No workflows yet. Create one with ", h("code", {}, "CreateWorkflow"), ": named steps, each a task that starts once the steps it depends on succeeded.")));
    }
    const running = workflows.filter((w) => w.status === "RUNNING").length;
    const full = workflows.length >= this.limit;
    setText(document.getElementById("workflows-summary"),
      `${full ? "newest " : ""}${workflows.length} ${workflows.length === 1 ? "workflow" : "workflows"}${running ? ` · ${running} running` : ""}`);
    this.more.hidden = !full || this.limit >= MOST;
  }

  createRow() {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    const button = (cls, onclick) => h("button", { class: `btn small ${cls}`, type: "button", onclick });
    const row = h("tr", { tabindex: 0, class: "openable" },
      cell("workflow", "Workflow",
        h("button", { class: "link name", type: "button", onclick: () => this.onOpen(row.workflow.id) }),
        h("span", { class: "what muted" })),
      cell("status", "Status"),
      cell("steps", "Steps", h("span", { class: "progress" }), h("span", { class: "bar" }), h("span", { class: "others muted" })),
      cell("created", "Created"),
      cell("actions", "",
        h("span", { class: "row-actions" },
          button("retry", () => this.onAction("retry", row.workflow)),
          button("danger-outline cancel", () => this.onAction("cancel", row.workflow)))));
    return row;
  }

  updateRow(row, w) {
    const [workflow, status, steps, created, actions] = row.children;
    row.workflow = w;
    const [name, what] = workflow.children;
    setText(name, w.name);
    name.setAttribute("aria-label", `Open workflow ${w.name}`);
    setText(what, [`#${w.id}`, w.createdBy ? `by ${w.createdBy}` : ""].filter(Boolean).join(" · "));
    if (row.dataset.status !== w.status) {
      row.dataset.status = w.status;
      status.replaceChildren(badge(w.status));
    }
    const [progress, bar, others] = steps.children;
    setText(progress, progressText(w));
    const counts = JSON.stringify(w.stepCounts || {});
    if (bar.dataset.counts !== counts) {
      bar.dataset.counts = counts;
      bar.replaceChildren(progressBar(w));
    }
    setText(others, otherCounts(w));
    if (created.dataset.at !== w.createdAt) {
      created.dataset.at = w.createdAt;
      created.replaceChildren(timeAgo(w.createdAt), h("span", { class: "muted" }, short(w.createdAt)));
    }
    const [retry, cancel] = actions.firstChild.children;
    retry.hidden = !this.mayChange || !(w.status === "FAILED" || w.status === "CANCELLED");
    cancel.hidden = !this.mayChange || FINISHED.has(w.status);
    setText(retry, "Retry");
    retry.setAttribute("aria-label", `Retry workflow ${w.name}`);
    setText(cancel, "Cancel");
    cancel.setAttribute("aria-label", `Cancel workflow ${w.name}`);
  }
}

/** Cancels or retries a workflow, once confirmed; resolves when done (or refused: `onError` says why). */
export async function actOnWorkflow(kind, workflow, onError) {
  if (!workflow) return;
  const retry = kind === "retry";
  const unfinished = otherCounts(workflow);
  const ok = await confirmAction(retry ? {
    title: `Retry workflow ${workflow.name}?`,
    message: "Its failed and cancelled steps run again, each once the steps it depends on succeeded. Steps that succeeded are kept.",
    confirm: "Retry workflow",
  } : {
    title: `Cancel workflow ${workflow.name}?`,
    message: `Its unfinished steps will not run${unfinished ? ` (${unfinished})` : ""}; a running one's attempt is stopped. Steps that finished stay as they are.`,
    confirm: "Cancel workflow",
    danger: true,
  });
  if (!ok) return;
  try {
    // int64 ids go as the API's strings: a workflow's `id` has no 64-bit twin (api.js widens numbers).
    const answer = await call(retry ? "RetryWorkflow" : "CancelWorkflow", { id: String(workflow.id) });
    const n = Number((retry ? answer.retried : answer.cancelled) || 0);
    const steps = `${n} ${n === 1 ? "step" : "steps"}`;
    notify(`Workflow ${workflow.name}: ${retry ? `${steps} to run again` : `${steps} cancelled`}.`);
  } catch (error) {
    onError(error);
  }
}

// The queues panel: each queue's waiting and running tasks and the live workers serving it, whether it
// is paused (since when, why), and for those who may change it a button to pause or resume it; paused
// task types below, as `task-cli queue list` shows. A pause holds for every worker until resumed,
// restarts included. Then the concurrency and rate limits in force, as `task-cli limit list` shows.

import { call } from "./api.js";
import { confirmAction, h, notify, reconcile, setText, timeAgo } from "./ui.js";

export class Queues {
  constructor({ onError }) {
    this.onError = onError;
    this.body = document.getElementById("queues-body");
    this.limits = document.getElementById("limits-body");
    this.rows = [];
    this.mayChange = false; // until the caller's rights are known: no button that would be refused
  }

  async refresh() {
    const [{ queues = [], pausedTypes = [] }, { limits = [] }] = await Promise.all([call("ListQueues"), call("ListLimits")]);
    this.render([
      ...queues.map((q) => ({ kind: "queue", ...q })),
      ...pausedTypes.map((p) => ({ kind: "type", name: p.name, paused: true, pause: p })),
    ]);
    reconcile(this.limits, limits, (l) => `${l.kind}:${l.name}`, () => this.createLimitRow(), (row, l) => this.updateLimitRow(row, l));
    document.getElementById("limits").hidden = !limits.length;
  }

  /** The caller's rights (WhoAmI): pausing and resuming need `write`. */
  setRights(rights) {
    this.mayChange = rights.has("write");
    this.render(this.rows);
  }

  render(rows) {
    this.rows = rows;
    reconcile(this.body, rows, (r) => `${r.kind}:${r.name}`, (r) => this.createRow(r), (row, r) => this.updateRow(row, r));
    const paused = rows.filter((r) => r.paused).length;
    setText(document.getElementById("queues-summary"), paused ? `${paused} paused` : "none paused");
  }

  createRow(r) {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    const button = h("button", { class: "btn small", type: "button" });
    button.addEventListener("click", () => this.toggle(button._item));
    return h("tr", {},
      cell("queue", r.kind === "type" ? "Task type" : "Queue",
        h("span", { class: "title" }, h("span", { class: "mono name" }), h("span", { class: "state" })),
        h("span", { class: "why muted" })),
      cell("num", "Waiting"), cell("num", "Running"), cell("actions", "", button));
  }

  updateRow(row, r) {
    const [queue, waiting, running, actions] = row.children;
    const [title, why] = queue.children;
    const [name, state] = title.children;
    setText(name, r.kind === "type" ? `type ${r.name}` : r.name);
    const label = r.paused ? "Paused" : "Active";
    if (state.dataset.label !== label) {
      state.dataset.label = label;
      state.replaceChildren(h("span", { class: `pill ${r.paused ? "gone" : "live"}` }, label));
    }
    // Under the name: since when and why it is paused, or who serves it.
    const at = r.paused ? r.pause?.pausedAt || "" : "";
    const text = r.paused ? (r.pause?.reason || "") : `${r.workers || 0} ${r.workers === 1 ? "worker" : "workers"}`;
    if (why.dataset.key !== `${at}|${text}`) {
      why.dataset.key = `${at}|${text}`;
      why.replaceChildren(...(at ? ["paused ", timeAgo(at), text ? ` · ${text}` : ""] : [text]));
    }
    const counted = r.kind === "queue";
    setText(waiting, counted ? String(r.waiting || 0) : "—");
    setText(running, counted ? String(r.running || 0) : "—");
    const button = actions.firstChild;
    button._item = r;
    button.hidden = !this.mayChange;
    const what = r.kind === "type" ? `task type ${r.name}` : `queue ${r.name}`;
    setText(button, r.paused ? "Resume" : "Pause");
    button.setAttribute("aria-label", `${r.paused ? "Resume" : "Pause"} ${what}`);
    row.classList.toggle("paused", Boolean(r.paused));
  }

  createLimitRow() {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    return h("tr", {},
      cell("limit", "Limit", h("span", { class: "mono name" }), h("span", { class: "why muted" })),
      cell("allows", "Allows"), cell("num", "Waiting"), cell("num", "Running"));
  }

  /** A limit: what it limits, per which key, who set it (or its type's declaration); how many at once
   * and how many starts in a period; its tasks waiting and running. */
  updateLimitRow(row, l) {
    const [limit, allows, waiting, running] = row.children;
    const [name, why] = limit.children;
    setText(name, `${l.kind} ${l.name}`);
    const by = l.setBy ? `set by ${l.setBy}` : "declared with its type";
    setText(why, l.key ? `per ${l.key} · ${by}` : by);
    // In `task-cli limit set`'s words; "no limit" when set to nothing at run time (instead of a declaration).
    const parts = [l.concurrency ? `concurrency ${l.concurrency}` : "", l.rateLimit ? `rate ${l.rateLimit}` : ""];
    setText(allows, parts.filter(Boolean).join(", ") || "no limit");
    setText(waiting, String(Number(l.waiting || 0)));
    setText(running, String(Number(l.running || 0)));
  }

  async toggle(r) {
    const target = r.kind === "type" ? { type: r.name } : { queue: r.name };
    const what = r.kind === "type" ? `Task type ${r.name}` : `Queue ${r.name}`;
    try {
      if (r.paused) {
        await call("ResumeQueue", target);
        notify(`${what} resumed.`);
      } else {
        const ok = await confirmAction({
          title: `Pause ${what.charAt(0).toLowerCase()}${what.slice(1)}?`,
          message: `No new task of ${what.toLowerCase()} starts, on any worker, until it is resumed. Running ones finish.`,
          confirm: "Pause",
        });
        if (!ok) return;
        await call("PauseQueue", { ...target, reason: "from the dashboard" });
        notify(`${what} paused.`);
      }
    } catch (error) {
      this.onError(error);
    }
    await this.refresh().catch(this.onError);
  }
}

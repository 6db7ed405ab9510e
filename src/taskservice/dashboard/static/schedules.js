// The schedules panel: each schedule's timing, next and last tick, how its last run went (a link to that
// task), its state and the ticks it missed or skipped, as `task-cli schedule list` shows; and for those
// who may change them, pause or resume, run now (a task by hand, the ticks going on as they were) and
// delete (its tasks stay).

import { call } from "./api.js";
import { badge, confirmAction, h, notify, reconcile, setText, short, timeAgo, timeUntil } from "./ui.js";

const UNITS = [["d", 86400], ["h", 3600], ["m", 60]];

/** An interval as it is typed (`task-cli schedule create --every`): "30s", "5m", "2h", "1d", "90s". */
function everyText(seconds) {
  for (const [unit, size] of UNITS) if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

/** When a schedule ticks: "0 2 * * * Europe/Berlin", or "every 30s". */
function whenText(s) {
  return s.cron ? `${s.cron} ${s.timezone}` : `every ${everyText(s.everySeconds)}`;
}

/** paused, ended (no tick left before its end), or active: the CLI's words. */
function stateOf(s) {
  return s.paused ? "paused" : s.nextTick ? "active" : "ended";
}

export class Schedules {
  /** `onOpen(id)` opens a task; `onChanged()` follows a change that created a task (run now). */
  constructor({ onOpen, onChanged, onError }) {
    Object.assign(this, { onOpen, onChanged, onError });
    this.body = document.getElementById("schedules-body");
    this.schedules = [];
    this.mayChange = false; // until the caller's rights are known: no button that would be refused
  }

  async refresh() {
    const { schedules = [] } = await call("ListSchedules");
    this.render(schedules);
  }

  /** The caller's rights (WhoAmI): pausing, running and deleting need `write`. */
  setRights(rights) {
    this.mayChange = rights.has("write");
    this.render(this.schedules);
  }

  render(schedules) {
    this.schedules = schedules;
    reconcile(this.body, schedules, (s) => s.id, (s) => this.createRow(s), (row, s) => this.updateRow(row, s));
    if (!schedules.length) {
      this.body.append(h("tr", { class: "empty" }, h("td", { colspan: 8 },
        "No schedules yet. Create one with ", h("code", {}, "task-cli schedule create NAME --cron '0 2 * * *' --type T"),
        " or in code, with ", h("code", {}, "@task(\"T\", cron=\"0 2 * * *\")"), ".")));
    }
    const paused = schedules.filter((s) => s.paused).length;
    setText(document.getElementById("schedules-summary"),
      `${schedules.length} ${schedules.length === 1 ? "schedule" : "schedules"}${paused ? ` · ${paused} paused` : ""}`);
  }

  createRow() {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    const button = (cls, onclick) => h("button", { class: `btn small ${cls}`, type: "button", onclick });
    const row = h("tr", { tabindex: -1 }, // focusable: a task's details link to their schedule's row
      cell("schedule", "Schedule", h("span", { class: "name" }), h("span", { class: "what muted" })),
      cell("when mono", "When"),
      cell("next", "Next tick"),
      cell("last", "Last tick"),
      cell("run", "Last run"),
      cell("state", "State"),
      cell("num counts", "Missed / skipped"),
      cell("actions", "",
        h("span", { class: "row-actions" },
          button("toggle", () => this.toggle(row.schedule)),
          button("trigger", () => this.trigger(row.schedule)),
          button("danger-outline delete", () => this.remove(row.schedule)))));
    return row;
  }

  updateRow(row, s) {
    const [schedule, when, next, last, run, state, counts, actions] = row.children;
    row.schedule = s;
    const [name, what] = schedule.children;
    setText(name, s.name);
    const made = s.declaredType ? `declared by task type ${s.declaredType}` : s.createdBy ? `made by ${s.createdBy}` : "";
    setText(what, [`creates ${s.task.type}`, made].filter(Boolean).join(" · "));
    setText(when, whenText(s));
    const kind = stateOf(s);
    // The next tick: how long until it, and when; none while paused (resumed, it ticks next after now).
    this.showTime(next, kind === "active" ? s.nextTick : "", timeUntil);
    this.showTime(last, s.lastTick, timeAgo);
    this.showLastRun(run, s);
    // Its type's code declares it no more (`undeclared_at`, docs/schedules.md): reported, still running.
    const undeclared = Boolean(s.undeclaredAt);
    const key = `${kind}|${undeclared}`;
    if (state.dataset.key !== key) {
      state.dataset.key = key;
      state.replaceChildren(h("span", { class: `pill ${kind === "active" ? "live" : "gone"}` }, kind),
        ...(undeclared ? [h("span", { class: "undeclared", title: "Its task type's code declares it no more; it runs on until deleted." },
          "no longer declared")] : []));
    }
    setText(counts, `${Number(s.missed || 0)} / ${Number(s.skipped || 0)}`);
    counts.title = `${Number(s.missed || 0)} ticks missed while no scheduler ran; ${Number(s.skipped || 0)} skipped while the previous run was unfinished`;
    const [toggle, trigger, remove] = actions.firstChild.children;
    for (const button of [toggle, trigger, remove]) button.hidden = !this.mayChange;
    const verb = s.paused ? "Resume" : "Pause";
    setText(toggle, verb);
    toggle.setAttribute("aria-label", `${verb} schedule ${s.name}`);
    setText(trigger, "Run now");
    trigger.setAttribute("aria-label", `Run schedule ${s.name} now`);
    setText(remove, "Delete");
    remove.setAttribute("aria-label", `Delete schedule ${s.name}`);
    row.classList.toggle("paused", kind !== "active");
  }

  /** A time shown relative (`format`: timeAgo or timeUntil) over its short absolute form; "—" if none. */
  showTime(cell, at, format) {
    if (cell.dataset.at === (at || "")) return;
    cell.dataset.at = at || "";
    cell.replaceChildren(...(at ? [format(at), h("span", { class: "muted" }, short(at))] : ["—"]));
  }

  /** Its last task: the status and a link that opens it; "deleted" when it is gone. */
  showLastRun(cell, s) {
    const id = Number(s.lastTaskId64 || 0);
    const status = s.lastTaskStatus || "";
    const key = `${id}|${status}`;
    if (cell.dataset.key === key) return;
    cell.dataset.key = key;
    if (!id) {
      cell.replaceChildren("—");
    } else if (!status) {
      cell.replaceChildren(h("span", { class: "muted" }, `#${id} (deleted)`));
    } else {
      cell.replaceChildren(badge(status),
        h("button", { class: "link mono", type: "button", title: `Open task #${id}`, onclick: () => this.onOpen(id) }, `#${id}`));
    }
  }

  /** Brings a schedule's row into view and focus (a task's details link to it); false if it is not listed. */
  show(id) {
    const row = this.body.querySelector(`tr[data-key="${id}"]`);
    if (!row) return false;
    row.scrollIntoView({ block: "center", behavior: "smooth" });
    row.focus({ preventScroll: true });
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
    return true;
  }

  async toggle(s) {
    try {
      const { schedule } = await call("UpdateSchedule", { name: s.name, paused: !s.paused });
      notify(schedule.paused ? `Schedule ${s.name} paused.` : `Schedule ${s.name} resumed.`);
    } catch (error) {
      this.onError(error);
    }
    await this.refresh().catch(this.onError);
  }

  async trigger(s) {
    try {
      const { taskId } = await call("TriggerSchedule", { name: s.name }); // read from task_id64 (api.js)
      notify(`Task #${taskId} created (schedule ${s.name}, by hand).`);
      this.onChanged();
    } catch (error) {
      this.onError(error);
    }
    await this.refresh().catch(this.onError);
  }

  async remove(s) {
    const ok = await confirmAction({
      title: `Delete schedule ${s.name}?`,
      message: "No task is created for it any more. The tasks it created stay.",
      confirm: "Delete schedule",
      danger: true,
    });
    if (!ok) return;
    try {
      await call("DeleteSchedule", { name: s.name });
      notify(`Schedule ${s.name} deleted.`);
    } catch (error) {
      this.onError(error);
    }
    await this.refresh().catch(this.onError);
  }
}

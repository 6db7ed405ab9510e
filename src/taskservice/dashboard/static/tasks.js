// The task table: filters, pagination, and rows that follow the event stream in place.

import { call } from "./api.js";
import { ACTIVE, FINISHED, STATUSES, badge, duration, h, icon, isStep, notify, reconcile, setText, short, statusLabel, throttle, debounce } from "./ui.js";

const PAYLOAD_ICON = "M8 4H6.5A1.5 1.5 0 0 0 5 5.5v4L3.5 12 5 14.5v4A1.5 1.5 0 0 0 6.5 20H8M16 4h1.5A1.5 1.5 0 0 1 19 5.5v4l1.5 2.5-1.5 2.5v4a1.5 1.5 0 0 1-1.5 1.5H16";
const DETAILS_ICON = "M9 5l7 7-7 7";

/** The order after a click on `column`'s header: the other way if it is the sorted one, else its
 * first way (the longest duration first; the rest ascending). "" is the default, newest first. */
function nextOrder(order, column) {
  const [sorted, way] = (order || "created_desc").split("_");
  let next = `${column}_${column === "duration" ? "desc" : "asc"}`;
  if (sorted === column) next = `${column}_${way === "asc" ? "desc" : "asc"}`;
  else if (column === "created") next = "created_desc";
  return next === "created_desc" ? "" : next;
}

export class TaskTable {
  /**
   * `state` is {status, type, name, size, page, order}; `onChange(state)` hears every filter or page
   * change; `onBulk(kind, selection)` a bulk action on the selected tasks ({ids} or {filter}, and their
   * `count`); `onOpenWorker(id)` opens the page of the worker a row names.
   */
  constructor(state, { onOpen, onOpenWorker, onPayload, onAction, onBulk, onChange, onError }) {
    Object.assign(this, { state, onOpen, onOpenWorker, onPayload, onAction, onBulk, onChange, onError });
    this.body = document.getElementById("tasks-body");
    this.total = 0;
    this.seq = 0;
    // The selection: task ids picked one by one (kept across pages), or every task matching the filters.
    this.selected = new Set();
    this.allMatching = false;
    // Events arrive in bursts; the current page is re-read at most about once a second.
    this.refresh = throttle(() => this.load().catch(this.onError), 700);
    this.bindFilters();
    this.bindRows();
    this.bindSelection();
  }

  /** Row checkboxes, the page's checkbox in the header, "select all N matching" and the actions. */
  bindSelection() {
    this.body.addEventListener("change", (event) => {
      const box = event.target;
      const task = box.classList.contains("row-select") && box.closest("tr")?.task;
      if (!task) return;
      if (this.allMatching) this.keepPageOnly(); // unticking one of "all matching": the page's others stay
      if (box.checked) this.selected.add(task.id);
      else this.selected.delete(task.id);
      this.showSelection();
    });
    document.getElementById("select-page").addEventListener("change", (event) => {
      if (this.allMatching) this.keepPageOnly();
      for (const task of this.pageTasks()) {
        if (event.target.checked) this.selected.add(task.id);
        else this.selected.delete(task.id);
      }
      this.showSelection();
    });
    document.getElementById("select-all-matching").addEventListener("click", () => {
      this.allMatching = true;
      this.showSelection();
    });
    document.getElementById("clear-selection").addEventListener("click", () => this.clearSelection());
    for (const kind of ["cancel", "retry", "delete"]) {
      document.getElementById(`bulk-${kind}`).addEventListener("click", () => this.onBulk(kind, this.selection()));
    }
  }

  pageTasks() {
    return [...this.body.querySelectorAll(":scope > tr[data-key]")].map((row) => row.task).filter(Boolean);
  }

  keepPageOnly() {
    this.allMatching = false;
    this.selected = new Set(this.pageTasks().map((task) => task.id));
  }

  clearSelection() {
    this.selected.clear();
    this.allMatching = false;
    this.showSelection();
  }

  /** What the bulk actions act on: the ids, or the filters shown (`all` when there are none). */
  selection() {
    if (!this.allMatching) return { ids: [...this.selected], count: this.selected.size };
    const { status, type, name } = this.state;
    const filter = { statuses: status ? [status] : [], all: !(status || type || name) };
    if (type) filter.type = type;
    if (name) filter.nameContains = name;
    return { filter, count: this.total };
  }

  showSelection() {
    const rows = this.pageTasks();
    for (const row of this.body.querySelectorAll(":scope > tr[data-key]")) {
      const box = row.querySelector(".row-select");
      if (box && row.task) box.checked = this.allMatching || this.selected.has(row.task.id);
    }
    const onPage = rows.filter((task) => this.allMatching || this.selected.has(task.id)).length;
    const header = document.getElementById("select-page");
    header.checked = rows.length > 0 && onPage === rows.length;
    header.indeterminate = onPage > 0 && onPage < rows.length;
    const count = this.allMatching ? this.total : this.selected.size;
    document.getElementById("bulk-bar").hidden = count === 0;
    setText(document.getElementById("bulk-count"), this.allMatching
      ? `All ${this.total.toLocaleString()} matching ${this.total === 1 ? "task" : "tasks"} selected`
      : `${count.toLocaleString()} selected`);
    const more = document.getElementById("select-all-matching");
    more.hidden = this.allMatching || !header.checked || this.total <= rows.length;
    setText(more, `Select all ${this.total.toLocaleString()} matching`);
  }

  /**
   * A click anywhere on a task's row opens it, as Enter does on a focused row; except a click that
   * belongs to a control in the row (its own action) or that ends a text selection (a copy).
   */
  bindRows() {
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (!row?.task || event.defaultPrevented) return;
      if (event.target.closest("a, button, input, select, textarea, label, summary")) return;
      const selection = getSelection();
      if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) return;
      this.onOpen(row.task.id);
    });
    this.body.addEventListener("keydown", (event) => {
      const row = event.target;
      if (event.key !== "Enter" || row.tagName !== "TR" || !row.task) return;
      event.preventDefault();
      this.onOpen(row.task.id);
    });
  }

  bindFilters() {
    const status = document.getElementById("filter-status");
    status.append(...STATUSES.map((s) => h("option", { value: s }, statusLabel(s))));
    const name = document.getElementById("filter-name");
    const type = document.getElementById("filter-type");
    const size = document.getElementById("page-size");
    status.value = this.state.status;
    name.value = this.state.name;
    size.value = String(this.state.size);
    const changed = (patch) => {
      Object.assign(this.state, patch);
      if (patch.page === 0) this.clearSelection(); // other filters: another set of tasks
      this.onChange(this.state);
      this.load().catch(this.onError);
    };
    status.addEventListener("change", () => changed({ status: status.value, page: 0 }));
    type.addEventListener("change", () => changed({ type: type.value, page: 0 }));
    name.addEventListener("input", debounce(() => changed({ name: name.value.trim(), page: 0 }), 250));
    size.addEventListener("change", () => changed({ size: Number(size.value), page: 0 }));
    document.getElementById("page-prev").addEventListener("click", () => changed({ page: this.state.page - 1 }));
    document.getElementById("page-next").addEventListener("click", () => changed({ page: this.state.page + 1 }));
    document.querySelector(".filters").addEventListener("submit", (e) => e.preventDefault());
    // Enter on an id opens that task at once.
    name.addEventListener("keydown", (event) => {
      const id = taskId(name.value);
      if (event.key !== "Enter" || !id) return;
      event.preventDefault(); // else the Enter goes on to press the opened dialog's focused Close
      this.onOpen(id);
    });
    // A column's header sorts by it; again, the other way. Creation's order is read from an index
    // whatever the count; the others sort every matching task, so the server takes them for at most
    // 10,000 matching (it says so otherwise: filter first).
    for (const button of document.querySelectorAll(".tasks-table th button.sort")) {
      button.addEventListener("click", () => changed({ order: nextOrder(this.state.order, button.dataset.column), page: 0 }));
    }
    this.showOrder();
  }

  /** The sorted column's header says which way the list runs; the others, what a click does. */
  showOrder() {
    const [column, way] = (this.state.order || "created_desc").split("_");
    for (const button of document.querySelectorAll(".tasks-table th button.sort")) {
      const name = button.dataset.column;
      const label = button.firstChild.textContent.trim().toLowerCase();
      const sorted = name === column;
      const header = button.closest("th");
      if (sorted) header.setAttribute("aria-sort", way === "asc" ? "ascending" : "descending");
      else header.removeAttribute("aria-sort");
      button.lastChild.textContent = sorted ? (way === "asc" ? "↑" : "↓") : "";
      const next = nextOrder(this.state.order, name).endsWith("_asc") ? "ascending" : "descending";
      button.title = name === "created"
        ? (sorted && way === "asc" ? "Oldest first; click for newest first" : "Newest first; click for oldest first")
        : `${button.dataset.title ? button.dataset.title + ". " : ""}Click to sort by ${label}, ${next}`;
    }
  }

  setTypes(types) {
    const select = document.getElementById("filter-type");
    const wanted = [...new Set([...types, this.state.type].filter(Boolean))].sort();
    select.replaceChildren(h("option", { value: "" }, "All types"), ...wanted.map((t) => h("option", { value: t }, t)));
    select.value = this.state.type;
  }

  /** Shows one status: what a status card asks for. */
  showStatus(status) {
    this.state.status = this.state.status === status ? "" : status;
    this.state.page = 0;
    this.clearSelection();
    document.getElementById("filter-status").value = this.state.status;
    this.onChange(this.state);
    return this.load();
  }

  async load() {
    const seq = ++this.seq;
    const { status, type, name, size, page, order } = this.state;
    this.showOrder();
    const id = taskId(name);
    if (id) { // an id: that task alone (whatever the other filters), else the names that hold it
      const found = await call("GetTask", { id }).catch((error) => {
        if (error.code === "not_found") return null;
        throw error;
      });
      if (seq !== this.seq) return;
      if (found) {
        this.total = 1;
        this.render([found]);
        return;
      }
    }
    const request = { limit: size, offset: page * size };
    if (status) request.status = status;
    if (type) request.type = type;
    if (name) request.nameContains = name;
    if (order) request.orderBy = order;
    let listed;
    try {
      listed = await call("ListTasks", request);
    } catch (error) {
      if (error.code !== "invalid_argument" || !order || order.startsWith("created_")) throw error;
      // Too many tasks match to sort by that column: say so, and list them newest first.
      notify(error.message.replace(/^order_by: /, ""), "error");
      this.state.order = "";
      this.onChange(this.state);
      return this.load();
    }
    const { tasks = [], total = "0" } = listed;
    if (seq !== this.seq) return; // a newer load (other filters) has already been asked for
    this.total = Number(total);
    if (!tasks.length && page > 0 && this.total > 0) {
      // The page emptied (tasks moved out of the filter): go to the last page that has rows.
      this.state.page = Math.max(0, Math.ceil(this.total / size) - 1);
      this.onChange(this.state);
      return this.load();
    }
    this.render(tasks);
  }

  render(tasks) {
    reconcile(this.body, tasks, (t) => t.id, (t) => this.createRow(t), (row, t) => this.updateRow(row, t));
    if (!tasks.length) {
      const filtered = this.state.status || this.state.type || this.state.name;
      this.body.append(h("tr", { class: "empty" }, h("td", { colspan: 12 },
        filtered ? "No tasks match these filters." : "No tasks yet. Create one with “New task”.")));
    }
    const { size, page } = this.state;
    const from = this.total ? page * size + 1 : 0;
    const to = Math.min(this.total, (page + 1) * size);
    setText(document.getElementById("page-range"), `${from}–${to} of ${this.total.toLocaleString()}`);
    setText(document.getElementById("tasks-total"), `${this.total.toLocaleString()} ${this.total === 1 ? "task" : "tasks"}`);
    document.getElementById("page-prev").disabled = page === 0;
    document.getElementById("page-next").disabled = to >= this.total;
    this.showSelection();
  }

  createRow(task) {
    const cell = (cls, label, ...children) => h("td", { class: cls, "data-label": label }, ...children);
    const row = h("tr", { tabindex: 0, class: "openable" },
      cell("select", "", h("input", { type: "checkbox", class: "row-select" })),
      cell("num id", "ID"),
      cell("name", "Name", h("button", { class: "link", type: "button", onclick: () => this.onOpen(row.task.id) })),
      cell("type", "Type", h("span", { class: "tag" })),
      cell("description", "Description"),
      cell("status", "Status"),
      cell("created", "Created", h("time", {})),
      cell("num attempts", "Attempts"),
      cell("num duration", "Duration"),
      cell("worker", "Worker", h("button", { class: "link mono", type: "button", onclick: () => this.onOpenWorker(row.task.lastWorkerId) })),
      cell("last-error", "Last error"),
      cell("actions", ""));
    return row;
  }

  updateRow(row, task) {
    const [select, id, name, type, description, status, created, attempts, took, worker, error, actions] = row.children;
    row.task = task;
    select.firstChild.setAttribute("aria-label", `Select task ${task.id}`);
    select.firstChild.checked = this.allMatching || this.selected.has(task.id);
    setText(id, `#${task.id}`);
    setText(name.firstChild, task.name);
    setText(type.firstChild, task.type);
    setText(description, task.description || "—");
    description.title = task.description || "";
    const waiting = task.waitingReason || "";
    if (row.dataset.status !== task.status || row.dataset.waiting !== waiting) {
      const first = !row.dataset.status;
      const moved = row.dataset.status !== task.status;
      row.dataset.status = task.status;
      row.dataset.waiting = waiting;
      // A waiting task whose type no live worker runs is marked, the reason in its title. A workflow
      // step WAITING for its parents is not a problem: its reason is only the status's title.
      const step = task.status === "WAITING";
      const marker = waiting && !step && h("span", { class: "waiting-marker", title: waiting, "aria-label": waiting, role: "img" }, "!");
      status.title = step ? waiting : "";
      status.replaceChildren(badge(task.status), ...(marker ? [marker] : []));
      if (!first && moved) flash(status);
      this.renderActions(actions, task);
    }
    const time = created.firstChild;
    if (time.dateTime !== task.createdAt) {
      time.dateTime = task.createdAt;
      time.title = new Date(task.createdAt).toString();
      setText(time, short(task.createdAt));
    }
    setText(attempts, task.attempts);
    attempts.title = `${task.attempts} attempts; ${task.retries} of ${task.maxRetries} retries used`;
    // Its last attempt's: how long it ran (so far, while it runs), where, and how it failed.
    setText(took, task.lastWorkerId ? duration(task.lastAttemptSeconds || 0) : "—");
    took.title = task.status === "RUNNING" ? "Running so far" : task.lastWorkerId ? "Its last attempt's duration" : "";
    const by = worker.firstChild;
    setText(by, task.lastWorkerId || "");
    by.hidden = !task.lastWorkerId;
    by.title = task.lastWorkerId ? `Open worker ${task.lastWorkerId}` : "";
    setText(error, task.lastError || "");
    error.title = task.lastError || "";
  }

  renderActions(cell, task) {
    const id = task.id;
    const button = (label, aria, path, onclick, cls = "icon-btn") =>
      h("button", { class: cls, type: "button", "aria-label": aria, title: aria, onclick }, path ? icon(path) : label);
    cell.replaceChildren(h("div", { class: "row-actions" },
      FINISHED.has(task.status) && !isStep(task) && button("Retry", `Retry task ${id}`, null, () => this.onAction("retry", taskOf(cell)), "btn small"),
      ACTIVE.has(task.status) && button("Cancel", `Cancel task ${id}`, null, () => this.onAction("cancel", taskOf(cell)), "btn small danger-outline"),
      button("", `View payload of task ${id}`, PAYLOAD_ICON, () => this.onPayload(taskOf(cell))),
      button("", `Open details of task ${id}`, DETAILS_ICON, () => this.onOpen(id))));
  }

  /** An event: show the new status at once, then re-read the page (attempts, order, filter membership). */
  onEvent(event) {
    const row = this.body.querySelector(`tr[data-key="${event.taskId}"]`);
    if (row && row.task && event.status !== row.task.status) this.updateRow(row, { ...row.task, status: event.status, waitingReason: "" });
    this.refresh();
  }
}

/** The task id a search names ("42" or "#42"), else 0. */
function taskId(text) {
  const found = /^#?([1-9]\d{0,15})$/.exec((text || "").trim());
  return found ? Number(found[1]) : 0;
}

function taskOf(cell) {
  return cell.closest("tr").task;
}

function flash(node) {
  node.classList.remove("flash");
  void node.offsetWidth; // restart the animation
  node.classList.add("flash");
}

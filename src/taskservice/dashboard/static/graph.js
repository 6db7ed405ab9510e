// A workflow's graph, in its dialog: the steps in layers (a step one layer below the deepest step it
// depends on, a spawned child below the step that spawned it), edges as SVG paths from each parent to its
// child, each node a button with the step's name, type and status that opens the step's task. It follows
// the workflow live while it runs; Cancel and Retry for those who may change it.

import { call } from "./api.js";
import { FINISHED, STATUSES, absolute, badge, h, setText, statusLabel, throttle, timeAgo } from "./ui.js";

const POLL_MS = 2000; // while open and unfinished: what events do not say (children spawned, cascades)
const MANY = 16; // a layer of more steps than this gets compact nodes, wrapped in rows
const DENSE = 60; // more edges than this are drawn fainter (hovering a step brings its own forward)

/** The parents of a step that place it: the steps it depends on and the step that spawned it, less a
 * child that its spawner waits for (that edge points up: the child runs first). */
function placingParents(step, byName) {
  const parents = new Set();
  for (const name of step.dependsOn || []) {
    const parent = byName.get(name);
    if (parent && name !== step.name && parent.spawnedBy !== step.name) parents.add(name);
  }
  if (step.spawnedBy && byName.has(step.spawnedBy)) parents.add(step.spawnedBy);
  return [...parents];
}

/**
 * The steps in layers, each layer a list of step names in the order to show them: layer 0 holds the steps
 * with no parent; any other step is one layer below its deepest parent. A cycle (never sent; but the page
 * must not hang on one) is cut where it closes. In a layer, steps follow the mean position of their
 * parents (fewer crossing edges), in creation order among equals.
 */
export function layers(steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const depth = new Map();
  const visiting = new Set();
  const level = (step) => {
    if (depth.has(step.name)) return depth.get(step.name);
    if (visiting.has(step.name)) return -1; // a cycle: this edge does not count
    visiting.add(step.name);
    let d = 0;
    for (const name of placingParents(step, byName)) {
      const parent = level(byName.get(name));
      if (parent >= 0) d = Math.max(d, parent + 1);
    }
    visiting.delete(step.name);
    depth.set(step.name, d);
    return d;
  };
  const rows = [];
  for (const step of steps) (rows[level(step)] ||= []).push(step.name);
  const place = new Map(); // name -> where in its layer, 0..1
  return rows.filter(Boolean).map((row, index) => {
    if (index > 0) {
      const key = new Map(row.map((name, i) => {
        const spots = placingParents(byName.get(name), byName).map((p) => place.get(p)).filter((x) => x !== undefined);
        return [name, [spots.length ? spots.reduce((a, b) => a + b, 0) / spots.length : 0.5, i]];
      }));
      row.sort((a, b) => key.get(a)[0] - key.get(b)[0] || key.get(a)[1] - key.get(b)[1]);
    }
    row.forEach((name, i) => place.set(name, (i + 0.5) / row.length));
    return row;
  });
}

/** The edges to draw, [from, to, kind]: "needs" (it depends on it) or "spawned" (it spawned it). A
 * spawner that waits for its children has no edge back up to it: the one down says it. */
export function edges(steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  return steps.flatMap((step) => placingParents(step, byName)
    .map((name) => [name, step.name, name === step.spawnedBy ? "spawned" : "needs"]));
}

/** "3/4 succeeded": of all its steps, how many did. */
export function progressText(workflow) {
  const counts = workflow.stepCounts || {};
  const total = Number(workflow.steps) || Object.values(counts).reduce((a, b) => a + Number(b), 0);
  return `${Number(counts.SUCCEEDED || 0)}/${total} succeeded`;
}

/** The counts of its steps that did not succeed (yet), in the order of the statuses: "1 running · 2 waiting". */
export function otherCounts(workflow) {
  const counts = workflow.stepCounts || {};
  return STATUSES.filter((s) => s !== "SUCCEEDED" && Number(counts[s] || 0) > 0)
    .map((s) => `${Number(counts[s])} ${statusLabel(s).toLowerCase()}`).join(" · ");
}

/** A bar of its steps by status, one coloured segment per status (the text beside it says the same). */
export function progressBar(workflow) {
  const counts = workflow.stepCounts || {};
  const bar = h("span", { class: "stepbar", "aria-hidden": "true" });
  for (const status of ["SUCCEEDED", "RUNNING", "RETRYING", "QUEUED", "WAITING", "FAILED", "CANCELLED"]) {
    const n = Number(counts[status] || 0);
    if (!n) continue;
    const segment = h("span", { class: `s-${status.toLowerCase()}` });
    segment.style.flexGrow = String(n); // the CSP refuses style attributes, not the CSSOM
    bar.append(segment);
  }
  return bar;
}

export class WorkflowGraph {
  /** `onOpenTask(id)` opens a step's task; `onAction(kind, workflow)` cancels or retries it. */
  constructor({ onOpenTask, onAction, onClose, onError }) {
    Object.assign(this, { onOpenTask, onAction, onClose, onError });
    this.dialog = document.getElementById("workflow");
    this.graph = document.getElementById("workflow-graph");
    this.id = ""; // the open workflow's id (int64, kept as the API's string)
    this.workflow = null;
    this.steps = [];
    this.nodes = new Map(); // step name -> its button
    this.shape = ""; // the steps and their edges as last laid out
    this.taskIds = new Set();
    this.mayChange = false;
    this.seq = 0;
    this.timer = null;
    this.refresh = throttle(() => this.load().catch(this.onError), 300);
    this.dialog.addEventListener("close", () => {
      this.id = "";
      clearTimeout(this.timer);
      this.onClose();
    });
    this.dialog.querySelector("[data-close]").addEventListener("click", () => this.dialog.close());
    document.getElementById("workflow-cancel").addEventListener("click", () => this.onAction("cancel", this.workflow));
    document.getElementById("workflow-retry").addEventListener("click", () => this.onAction("retry", this.workflow));
    // The edges follow the nodes wherever the layout puts them (a wider window, fewer rows).
    new ResizeObserver(() => this.drawEdges()).observe(this.graph);
  }

  async open(id) {
    id = String(id);
    if (this.id !== id) {
      this.id = id;
      this.workflow = null;
      this.steps = [];
      this.shape = "";
      this.nodes.clear();
      this.graph.replaceChildren();
      setText(document.getElementById("workflow-title"), `Workflow #${id}`);
      document.getElementById("workflow-meta").replaceChildren();
      for (const name of ["cancel", "retry"]) document.getElementById(`workflow-${name}`).hidden = true;
    }
    if (!this.dialog.open) this.dialog.showModal();
    await this.load();
  }

  /** The caller's rights (WhoAmI): cancelling and retrying need `write`. */
  setRights(rights) {
    this.mayChange = rights.has("write");
    if (this.workflow) this.renderHead(this.workflow);
  }

  async load() {
    const id = this.id;
    if (!id) return;
    const seq = ++this.seq;
    clearTimeout(this.timer);
    let answer;
    try {
      answer = await call("GetWorkflow", { id }); // int64 ids go as strings: `id` has no 64-bit twin
    } catch (error) {
      if (error.code === "not_found" && id === this.id) this.dialog.close(); // e.g. an old link
      throw error;
    }
    if (id !== this.id || seq !== this.seq) return; // another workflow, or a newer read, meanwhile
    this.render(answer.workflow, answer.steps || []);
    if (answer.workflow.status === "RUNNING") this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  /** An event of one of its steps' tasks: read the workflow again (soon, once per burst). */
  onEvent(event) {
    if (this.id && this.taskIds.has(event.taskId)) this.refresh();
  }

  render(workflow, steps) {
    this.workflow = workflow;
    this.steps = steps;
    this.taskIds = new Set(steps.map((s) => Number(s.taskId)));
    this.renderHead(workflow);
    const shape = JSON.stringify(steps.map((s) => [s.name, s.dependsOn || [], s.spawnedBy || ""]));
    if (shape !== this.shape) {
      this.shape = shape;
      this.layOut(steps);
    }
    for (const step of steps) this.updateNode(this.nodes.get(step.name), step);
    this.drawEdges();
  }

  renderHead(workflow) {
    setText(document.getElementById("workflow-title"), workflow.name);
    const meta = document.getElementById("workflow-meta");
    const key = `${workflow.status}|${JSON.stringify(workflow.stepCounts || {})}|${workflow.finishedAt || ""}`;
    if (meta.dataset.key !== key) {
      meta.dataset.key = key;
      const others = otherCounts(workflow);
      meta.replaceChildren(badge(workflow.status),
        h("span", { class: "progress" }, progressText(workflow), others && h("span", { class: "muted" }, ` · ${others}`)),
        h("span", { class: "muted" }, `#${workflow.id} · created `, timeAgo(workflow.createdAt),
          ` (${absolute(workflow.createdAt)})`, workflow.createdBy ? ` by ${workflow.createdBy}` : ""));
    }
    const retriable = workflow.status === "FAILED" || workflow.status === "CANCELLED";
    document.getElementById("workflow-cancel").hidden = !this.mayChange || FINISHED.has(workflow.status);
    document.getElementById("workflow-retry").hidden = !this.mayChange || !retriable;
  }

  /** The layers and their nodes, anew (nodes are kept: focus stays on the one that had it). A layer of
   * many steps is framed, with a caption, and its edges are bundled at the frame (see drawEdges). */
  layOut(steps) {
    const rows = layers(steps);
    const byName = new Map(steps.map((s) => [s.name, s]));
    const kept = new Map();
    for (const step of steps) kept.set(step.name, this.nodes.get(step.name) || this.createNode(step));
    this.nodes = kept;
    this.layerOf = new Map();
    this.svg = h("svg", { class: "edges", "aria-hidden": "true" }, markers());
    this.trunks = h("g", { class: "trunks" });
    this.layers = rows.map((row, index) => {
      const many = row.length > MANY;
      const layer = h("div", {
        class: `layer${many ? " many" : ""}`, role: "group", "aria-label": `Layer ${index + 1} of ${rows.length}`, dataset: { layer: index },
      }, many && h("p", { class: "layer-caption" }, captionOf(row.map((name) => byName.get(name)))), ...row.map((name) => {
        const node = kept.get(name);
        node.dataset.layer = index;
        this.layerOf.set(name, { index, many });
        return node;
      }));
      return layer;
    });
    this.graph.replaceChildren(this.svg, ...this.layers);
    this.edges = edges(steps).map(([from, to, kind]) => ({ from, to, kind, path: h("path", { class: `edge ${kind}` }) }));
    this.svg.classList.toggle("dense", this.edges.length > DENSE);
    this.svg.append(this.trunks, ...this.edges.map((e) => e.path));
  }

  createNode(step) {
    const node = h("button", { class: "node", type: "button", dataset: { step: step.name } },
      h("span", { class: "node-name" }), h("span", { class: "node-type mono" }), h("span", { class: "node-status" }));
    node.addEventListener("click", () => this.onOpenTask(Number(node.step.taskId)));
    // Its own edges come forward while it is pointed at or focused.
    const hot = (on) => {
      for (const e of this.edges || []) if (e.from === node.step.name || e.to === node.step.name) e.path.classList.toggle("hot", on);
    };
    node.addEventListener("mouseenter", () => hot(true));
    node.addEventListener("mouseleave", () => hot(false));
    node.addEventListener("focus", () => hot(true));
    node.addEventListener("blur", () => hot(false));
    return node;
  }

  updateNode(node, step) {
    node.step = step;
    const [name, type, status] = node.children;
    // A spawned child's name starts with its spawner's ("parent/child"): its node shows the rest.
    const prefix = step.spawnedBy ? `${step.spawnedBy}/` : "";
    setText(name, prefix && step.name.startsWith(prefix) ? step.name.slice(prefix.length) : step.name);
    setText(type, step.type);
    if (node.dataset.status !== step.status) {
      node.dataset.status = step.status;
      node.className = `node s-${step.status.toLowerCase()}`;
      status.replaceChildren(badge(step.status));
    }
    node.setAttribute("aria-label", `${step.name}: ${step.type}, ${statusLabel(step.status)}`);
    const needs = step.dependsOn || [];
    const more = needs.length > 10 ? ` and ${needs.length - 10} more` : "";
    const parents = needs.length ? `depends on ${needs.slice(0, 10).join(", ")}${more}` : "no dependency";
    node.title = [`${step.name} (task #${step.taskId})`, `type ${step.type}`, statusLabel(step.status),
      `${step.attempts} ${step.attempts === 1 ? "attempt" : "attempts"}`, parents,
      step.spawnedBy ? `spawned by ${step.spawnedBy}` : ""].filter(Boolean).join("\n");
  }

  /**
   * Each edge from the bottom of its parent to the top of its child, coloured by the parent's status. An
   * edge into or out of a layer of many steps ends at that layer's frame instead, one trunk for all the
   * edges that share both ends there (a fan-out of 120 children is one line); each one's own edge is
   * drawn only while its step is pointed at or focused.
   */
  drawEdges() {
    if (!this.svg || !this.edges || !this.dialog.open) return;
    const width = this.graph.scrollWidth;
    const height = this.graph.scrollHeight;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const boxOf = (node) => ({ x: node.offsetLeft, y: node.offsetTop, w: node.offsetWidth, h: node.offsetHeight });
    const box = new Map([...this.nodes].map(([name, node]) => [name, boxOf(node)]));
    const frames = this.layers.map(boxOf);
    const curve = (x1, y1, x2, y2) => {
      const bend = Math.max(18, (y2 - y1) / 2);
      return `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`;
    };
    const statusOf = (name) => (this.nodes.get(name).dataset.status || "UNKNOWN").toLowerCase();
    const trunks = new Map();
    for (const e of this.edges) {
      const a = box.get(e.from);
      const b = box.get(e.to);
      if (!a || !b) continue;
      const status = statusOf(e.from);
      e.path.setAttribute("d", curve(a.x + a.w / 2, a.y + a.h, b.x + b.w / 2, b.y - 2));
      const from = this.layerOf.get(e.from);
      const to = this.layerOf.get(e.to);
      const bundled = from.many || to.many;
      e.path.setAttribute("class", `edge ${e.kind} s-${status}${bundled ? " bundled" : ""}${e.path.classList.contains("hot") ? " hot" : ""}`);
      e.path.setAttribute("marker-end", `url(#arrow-${status})`);
      if (!bundled) continue;
      const start = from.many ? `L${from.index}` : e.from;
      const end = to.many ? `L${to.index}` : e.to;
      const key = `${start}>${end}`;
      if (trunks.has(key)) continue;
      const f = frames[from.index];
      const t = frames[to.index];
      const [x1, y1] = from.many ? [f.x + f.w / 2, f.y + f.h] : [a.x + a.w / 2, a.y + a.h];
      const [x2, y2] = to.many ? [t.x + t.w / 2, t.y - 2] : [b.x + b.w / 2, b.y - 2];
      const color = from.many ? "unknown" : status;
      trunks.set(key, h("path", { class: `edge trunk ${e.kind} s-${color}`, d: curve(x1, y1, x2, y2), "marker-end": `url(#arrow-${color})` }));
    }
    this.trunks.replaceChildren(...trunks.values());
  }
}

/** "120 steps, spawned by fanout": what a framed layer holds. */
function captionOf(steps) {
  const spawners = new Set(steps.map((s) => s.spawnedBy || ""));
  const [only] = spawners;
  return `${steps.length} steps${spawners.size === 1 && only ? `, spawned by ${only}` : ""}`;
}

/** An arrowhead per status, so that each edge's head has its colour. */
function markers() {
  return h("defs", {}, ...[...STATUSES, "UNKNOWN"].map((status) => h("marker", {
    id: `arrow-${status.toLowerCase()}`, class: `s-${status.toLowerCase()}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, h("path", { d: "M0,0 L10,5 L0,10 z" }))));
}

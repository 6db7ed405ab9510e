// The overview: a count card per status, the worker card, and the throughput / queue-depth chart.

import { call } from "./api.js";
import { h, icon, setText, statusIcon, statusLabel, STATUSES, STATUS_NUMBERS, parseTime } from "./ui.js";

const WINDOW_MS = 5 * 60 * 1000;
const BUCKET_MS = 10 * 1000;
const SEED_PAGES = 10;
const WORKER_ICON = "M4 5h16v5H4zM4 14h16v5H4zM7.5 7.5h.01M7.5 16.5h.01";

export class Overview {
  constructor({ onPickStatus, onPickWorkers }) {
    this.counts = {};
    // Finished tasks keyed by task, status and server time, so live events and the seed from
    // ListTasks count each finish once; the value is when it happened (ms).
    this.finished = new Map();
    this.depth = []; // [{t, value}] samples of QUEUED + RETRYING
    this.cards = new Map();
    this.chart = document.getElementById("chart");
    this.caption = document.getElementById("chart-caption");
    this.renderCards(onPickStatus, onPickWorkers);
    this.drawSoon = () => {
      // Events come in bursts: draw once per frame at most.
      if (this.drawPending) return;
      this.drawPending = true;
      requestAnimationFrame(() => {
        this.drawPending = false;
        this.draw();
      });
    };
    new ResizeObserver(this.drawSoon).observe(this.chart);
    setInterval(this.drawSoon, BUCKET_MS / 2);
  }

  renderCards(onPickStatus, onPickWorkers) {
    const root = document.getElementById("cards");
    for (const status of STATUSES) {
      const value = h("span", { class: "card-value" }, "–");
      const card = h("button", {
        class: `card s-${status.toLowerCase()}`, type: "button", dataset: { status },
        onclick: () => onPickStatus(status),
      }, h("span", { class: "card-label" }, statusIcon(status), statusLabel(status)), value);
      this.cards.set(status, { card, value });
      root.append(card);
    }
    this.workersValue = h("span", { class: "card-value" }, "–");
    this.workersNote = h("span", { class: "card-note" }, "");
    root.append(h("button", { class: "card workers-card", type: "button", onclick: onPickWorkers },
      h("span", { class: "card-label" }, icon(WORKER_ICON), "Workers"), this.workersValue, this.workersNote));
  }

  /** Marks the card of the status the task table is filtered by. */
  select(status) {
    for (const [name, { card }] of this.cards) card.setAttribute("aria-pressed", String(name === status));
  }

  async refreshCounts() {
    const { statusCounts = {} } = await call("GetStatus");
    for (const status of STATUSES) {
      const count = Number(statusCounts[STATUS_NUMBERS[status]] || 0);
      const { card, value } = this.cards.get(status);
      setText(value, count.toLocaleString());
      card.setAttribute("aria-label", `${statusLabel(status)}: ${count} tasks. Show them`);
      this.counts[status] = count;
    }
    this.sampleDepth((this.counts.QUEUED || 0) + (this.counts.RETRYING || 0));
  }

  setWorkers({ alive, slots, running }) {
    setText(this.workersValue, alive);
    setText(this.workersNote, `${slots} slots · ${running} running`);
  }

  /**
   * Finishes from before this page was opened (or while it was disconnected), so the chart starts full.
   * Tasks are listed newest created first; pages stop once tasks were created before the window (a task
   * finishes after it is created), and after SEED_PAGES pages at most: a busy server can take a guess.
   */
  async seedThroughput() {
    const since = Date.now() - WINDOW_MS;
    await Promise.all(["SUCCEEDED", "FAILED"].map(async (status) => {
      for (let page = 0; page < SEED_PAGES; page++) {
        const { tasks = [] } = await call("ListTasks", { status, limit: 100, offset: page * 100 });
        for (const task of tasks) {
          const at = parseTime(task.updatedAt);
          if (at >= since) this.addFinish(`${task.id}:${status}:${task.updatedAt}`, at);
        }
        if (tasks.length < 100 || parseTime(tasks[tasks.length - 1].createdAt) < since) break;
      }
    }));
    this.drawSoon();
  }

  onEvent(event) {
    if (event.status === "SUCCEEDED" || event.status === "FAILED") {
      // The arrival time, not the server's: a skewed client clock must not push bars off the chart.
      this.addFinish(`${event.taskId}:${event.status}:${event.createdAt}`, Date.now());
      this.drawSoon();
    }
  }

  addFinish(key, at) {
    if (!this.finished.has(key)) this.finished.set(key, { at, failed: key.includes(":FAILED:") });
  }

  sampleDepth(value) {
    const now = Date.now();
    this.depth.push({ t: now, value });
    while (this.depth.length && this.depth[0].t < now - WINDOW_MS - BUCKET_MS) this.depth.shift();
    this.drawSoon();
  }

  /** Per bucket of the window: when it starts, and how many tasks succeeded and failed in it. */
  buckets() {
    const count = WINDOW_MS / BUCKET_MS;
    const first = Math.floor(Date.now() / BUCKET_MS) - count + 1;
    const rows = Array.from({ length: count }, (_, i) => ({ start: (first + i) * BUCKET_MS, ok: 0, failed: 0 }));
    for (const [key, { at, failed }] of this.finished) {
      const i = Math.floor(at / BUCKET_MS) - first;
      if (i < 0) this.finished.delete(key);
      else if (i < count) rows[i][failed ? "failed" : "ok"] += 1;
    }
    return rows;
  }

  draw() {
    const width = Math.max(this.chart.clientWidth, 240);
    const height = width < 480 ? 160 : 200;
    const m = { top: 10, right: 38, bottom: 22, left: 34 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const rows = this.buckets();
    const maxRate = niceMax(Math.max(...rows.map((r) => r.ok + r.failed)));
    const start = rows[0].start;
    const depth = this.depth.filter((d) => d.t >= start);
    const maxDepth = niceMax(Math.max(...depth.map((d) => d.value)));
    const step = plotW / rows.length;
    const y = (v, max) => m.top + plotH - (v / max) * plotH;

    const grid = [0, 0.5, 1].map((f) => h("g", { class: "grid" },
      h("line", { x1: m.left, x2: m.left + plotW, y1: y(f * maxRate, maxRate), y2: y(f * maxRate, maxRate) }),
      h("text", { x: m.left - 6, y: y(f * maxRate, maxRate) + 4, "text-anchor": "end" }, fmt(f * maxRate)),
      h("text", { x: m.left + plotW + 6, y: y(f * maxDepth, maxDepth) + 4, class: "depth-label" }, fmt(f * maxDepth))));
    const minutes = WINDOW_MS / 60000;
    const ticks = Array.from({ length: minutes + 1 }, (_, i) => h("text", {
      x: m.left + (i / minutes) * plotW, y: height - 6,
      "text-anchor": i === 0 ? "start" : i === minutes ? "end" : "middle",
    }, i === minutes ? "now" : `−${minutes - i}${plotW < 420 ? "m" : " min"}`));

    const bars = rows.map((r, i) => {
      const x = m.left + i * step + step * 0.15;
      const w = Math.max(step * 0.7, 1);
      const time = new Date(r.start).toLocaleTimeString();
      return h("g", { class: "bar" },
        h("title", {}, `${time}: ${r.ok} succeeded, ${r.failed} failed`),
        h("rect", { class: "hit", x: m.left + i * step, y: m.top, width: step, height: plotH }),
        r.ok && h("rect", { class: "ok", x, width: w, y: y(r.ok, maxRate), height: plotH - (y(r.ok, maxRate) - m.top) }),
        r.failed && h("rect", { class: "failed", x, width: w, y: y(r.ok + r.failed, maxRate), height: y(r.ok, maxRate) - y(r.ok + r.failed, maxRate) }));
    });
    // The queue depth is drawn at the time of each sample, so a burst and its draining both show.
    const points = depth.map((d) => `${m.left + ((d.t - start) / (rows.length * BUCKET_MS)) * plotW},${y(d.value, maxDepth)}`);

    const totals = rows.reduce((a, r) => ({ ok: a.ok + r.ok, failed: a.failed + r.failed }), { ok: 0, failed: 0 });
    const depthNow = this.depth.length ? this.depth[this.depth.length - 1].value : 0;
    const summary = `Last ${minutes} minutes: ${totals.ok} succeeded, ${totals.failed} failed; ${depthNow} waiting in the queue now.`;
    const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": summary },
      ...grid, ...ticks, ...bars,
      points.length > 1 && h("polyline", { class: "depth", points: points.join(" ") }),
      points.length === 1 && h("circle", { class: "depth-dot", cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 3 }));
    this.chart.replaceChildren(svg);
    setText(this.caption, `${summary} Bars: tasks finished per ${BUCKET_MS / 1000} s (left axis); line: queue depth (right axis).`);
  }
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 3, 4, 5, 6, 8, 10].map((f) => f * magnitude).find((v) => v >= value);
}

function fmt(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

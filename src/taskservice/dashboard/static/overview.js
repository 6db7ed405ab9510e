// The overview: a count card per status, the worker card, the throughput / queue-depth chart over a
// chosen time range, and the figures of each task type over the same range (GetTypeStats).

import { call } from "./api.js";
import { duration, h, icon, reconcile, setText, statusIcon, statusLabel, STATUSES, STATUS_NUMBERS, parseTime, throttle } from "./ui.js";

export const RANGES = { 900: "15 minutes", 3600: "hour", 86400: "24 hours", 604800: "7 days" };
const BUCKETS = 60;
const WORKER_ICON = "M4 5h16v5H4zM4 14h16v5H4zM7.5 7.5h.01M7.5 16.5h.01";

export class Overview {
  /** `range` (seconds, a key of RANGES) is the chart's; `onRange(seconds)` hears it change. */
  constructor({ onPickStatus, onPickWorkers, onError, range = 900, onRange = () => {} }) {
    Object.assign(this, { onError, onRange });
    this.range = RANGES[range] ? range : 900;
    this.counts = {};
    this.stats = null; // the last GetTypeStatsResponse: buckets oldest first, the last ending at `until`
    this.depth = []; // [{t, value}] samples of QUEUED + RETRYING, by this page's clock
    this.cards = new Map();
    this.chart = document.getElementById("chart");
    this.caption = document.getElementById("chart-caption");
    this.statsBody = document.getElementById("type-stats-body");
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
    // Finishes re-read the figures: at most every 2 s over 15 minutes, less often over longer ranges
    // (a week's figures cost the server more, and a bar of it is hours wide).
    this.reloadSoon = throttle(() => this.loadStats().catch(this.onError), 2000);
    this.reloadLater = throttle(() => this.loadStats().catch(this.onError), 30000);
    const picker = document.getElementById("chart-range");
    picker.value = String(this.range);
    picker.addEventListener("change", () => {
      this.range = Number(picker.value);
      this.onRange(this.range);
      this.loadStats().catch(this.onError);
    });
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

  /** The chart's buckets and the figures by type over the chosen range, as of the server's now. */
  async loadStats() {
    const range = this.range;
    const stats = await call("GetTypeStats", { rangeSeconds: range, buckets: BUCKETS });
    if (range !== this.range) return; // another range was picked meanwhile
    this.stats = stats;
    this.renderTypes(stats.types || []);
    this.drawSoon();
  }

  onEvent(event) {
    if (event.status === "SUCCEEDED" || event.status === "FAILED" || event.status === "RETRYING") this.refreshStats();
  }

  /** Reads the figures again soon: time moves the range on, and attempts finish. */
  refreshStats() {
    (this.range <= 3600 ? this.reloadSoon : this.reloadLater)();
  }

  sampleDepth(value) {
    const now = Date.now();
    this.depth.push({ t: now, value });
    while (this.depth.length && this.depth[0].t < now - this.range * 1000) this.depth.shift();
    this.drawSoon();
  }

  /** Per bucket of the range: when it starts (ms), and how many attempts succeeded and failed in it. */
  buckets() {
    const rows = (this.stats?.buckets || []).map((b) => ({ start: parseTime(b.start), ok: Number(b.succeeded || 0), failed: Number(b.failed || 0) }));
    if (rows.length) return rows;
    const step = (this.range * 1000) / BUCKETS; // nothing read yet: an empty chart ending now
    const first = Date.now() - this.range * 1000;
    return Array.from({ length: BUCKETS }, (_, i) => ({ start: first + i * step, ok: 0, failed: 0 }));
  }

  renderTypes(types) {
    const cell = (cls, label) => h("td", { class: cls, "data-label": label });
    reconcile(this.statsBody, types, (t) => t.type,
      () => h("tr", {}, cell("type", "Type"), cell("num finished", "Finished"), cell("num per-minute", "Per minute"),
        cell("num failure-rate", "Failure rate"), cell("num p50", "p50"), cell("num p95", "p95"), cell("num p95-wait", "p95 wait")),
      (row, t) => {
        const finished = Number(t.finished || 0);
        const failed = Number(t.failed || 0);
        const values = [t.type, finished.toLocaleString(), perMinute(t.perMinute || 0),
          `${(100 * (t.failureRate || 0)).toFixed(1)}%`, duration(t.p50Seconds || 0), duration(t.p95Seconds || 0),
          duration(t.p95WaitSeconds || 0)];
        [...row.children].forEach((td, i) => setText(td, values[i]));
        row.children[3].title = `${failed.toLocaleString()} of ${finished.toLocaleString()} attempts failed, timed out or were lost`;
        row.classList.toggle("failing", failed > 0 && failed / finished >= 0.1);
      });
    if (!types.length) {
      this.statsBody.append(h("tr", { class: "empty" }, h("td", { colspan: 7 }, `No attempt finished in the last ${RANGES[this.range]}.`)));
    }
    setText(document.getElementById("type-stats-summary"), `Attempts finished in the last ${RANGES[this.range]}`);
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
    const bucketMs = (this.range * 1000) / rows.length;
    const y = (v, max) => m.top + plotH - (v / max) * plotH;

    const grid = [0, 0.5, 1].map((f) => h("g", { class: "grid" },
      h("line", { x1: m.left, x2: m.left + plotW, y1: y(f * maxRate, maxRate), y2: y(f * maxRate, maxRate) }),
      h("text", { x: m.left - 6, y: y(f * maxRate, maxRate) + 4, "text-anchor": "end" }, fmt(f * maxRate)),
      h("text", { x: m.left + plotW + 6, y: y(f * maxDepth, maxDepth) + 4, class: "depth-label" }, fmt(f * maxDepth))));
    const [count, unit, short] = TICKS[this.range];
    const ticks = Array.from({ length: count + 1 }, (_, i) => h("text", {
      x: m.left + (i / count) * plotW, y: height - 6,
      "text-anchor": i === 0 ? "start" : i === count ? "end" : "middle",
    }, i === count ? "now" : `−${((count - i) * this.range) / count / unit}${plotW < 420 ? short : ` ${short === "m" ? "min" : short}`}`));

    const bars = rows.map((r, i) => {
      const x = m.left + i * step + step * 0.15;
      const w = Math.max(step * 0.7, 1);
      const time = this.range > 86400 ? new Date(r.start).toLocaleString() : new Date(r.start).toLocaleTimeString();
      return h("g", { class: "bar" },
        h("title", {}, `${time}: ${r.ok} succeeded, ${r.failed} failed`),
        h("rect", { class: "hit", x: m.left + i * step, y: m.top, width: step, height: plotH }),
        r.ok && h("rect", { class: "ok", x, width: w, y: y(r.ok, maxRate), height: plotH - (y(r.ok, maxRate) - m.top) }),
        r.failed && h("rect", { class: "failed", x, width: w, y: y(r.ok + r.failed, maxRate), height: y(r.ok, maxRate) - y(r.ok + r.failed, maxRate) }));
    });
    // The queue depth is drawn at the time of each sample, so a burst and its draining both show.
    const points = depth.map((d) => `${m.left + Math.min(1, (d.t - start) / (rows.length * bucketMs)) * plotW},${y(d.value, maxDepth)}`);

    const totals = rows.reduce((a, r) => ({ ok: a.ok + r.ok, failed: a.failed + r.failed }), { ok: 0, failed: 0 });
    const depthNow = this.depth.length ? this.depth[this.depth.length - 1].value : 0;
    const summary = `Last ${RANGES[this.range]}: ${totals.ok} succeeded, ${totals.failed} failed; ${depthNow} waiting in the queue now.`;
    const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": summary },
      ...grid, ...ticks, ...bars,
      points.length > 1 && h("polyline", { class: "depth", points: points.join(" ") }),
      points.length === 1 && h("circle", { class: "depth-dot", cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 3 }));
    this.chart.replaceChildren(svg);
    setText(this.caption, `${summary} Bars: attempts finished per ${duration(bucketMs / 1000)} (left axis); line: queue depth since this page opened (right axis).`);
  }
}

// Per range: how many ticks, the unit of their labels (seconds) and its short name.
const TICKS = { 900: [5, 60, "m"], 3600: [6, 60, "m"], 86400: [6, 3600, "h"], 604800: [7, 86400, "d"] };

function perMinute(value) {
  return value >= 10 ? value.toFixed(0) : value >= 0.1 ? value.toFixed(1) : value > 0 ? value.toFixed(3) : "0";
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 3, 4, 5, 6, 8, 10].map((f) => f * magnitude).find((v) => v >= value);
}

function fmt(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

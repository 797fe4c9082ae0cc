/* Charts on uPlot (vendor/uplot, 1.6.32): time axes in the park's zone, measured series
   solid, plan series dashed, a line at now. Each chart element keeps its uPlot instance and
   says how many finite points it draws (data-points), for the reader and for the tests. */
"use strict";

const COLORS = {
  measured: "#1f6feb", planPast: "#24292f", planAhead: "#d97706", limit: "#cf222e",
  limitPlan: "#ff8182", cap: "#8250df", floor: "#1a7f37", peak: "#9a6700",
  pv: "#bf8700", pvPlan: "#d4a72c", ev: "#0969da", evPlan: "#54aeff", soc: "#1a7f37",
  socPlan: "#4ac26b", total: "#1f6feb", planner: "#d97706", solver: "#8250df", grid: "#1a7f37",
};
const DASH = [6, 4];

function toSeconds(iso) { return Date.parse(iso) / 1000; }

/* One x axis for several series given on their own times: the union of the times, each
   series null where it has no value. */
function align(parts) {
  const xs = new Set();
  for (const p of parts) for (const t of p.times) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  const at = new Map(x.map((t, i) => [t, i]));
  const ys = parts.map((p) => {
    const y = new Array(x.length).fill(null);
    p.times.forEach((t, i) => { const v = p.values ? p.values[i] : null; y[at.get(t)] = v ?? null; });
    return y;
  });
  return [x, ...ys];
}

function nowLine(getNow) {
  return {
    hooks: {
      draw: [(u) => {
        const t = getNow();
        if (!t) return;
        const x = u.valToPos(t, "x", true);
        if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#57606a";
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([2 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.restore();
      }],
    },
  };
}

const Charts = {
  now: null, // seconds: where the now line is drawn

  /* Draw (or redraw) a chart in `el`. series: [{label, color, dash, width, stepped, unit,
     scale}], data: [x, y1, y2...] as uPlot takes it. */
  draw(el, series, data, opts = {}) {
    const width = Math.max(el.clientWidth, 300);
    const height = opts.height || (el.classList.contains("small") ? 220 : 300);
    const tz = I18N.tz;
    const key = JSON.stringify([series.map((s) => s.label), I18N.lang, opts.yLabel]);
    const points = data.slice(1).reduce((n, ys) => n + ys.filter((v) => v !== null && Number.isFinite(v)).length, 0);
    el.dataset.points = String(points);
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", `${opts.title || ""}: ${series.map((s) => s.label).join(", ")}`);
    if (el._u && el._key === key) {
      el._u.setData(data);
      if (Math.abs(el._u.width - width) > 2) el._u.setSize({ width, height });
      return el._u;
    }
    if (el._u) el._u.destroy();
    const u = new uPlot({
      width, height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { live: true },
      plugins: opts.nowLine === false ? [] : [nowLine(() => Charts.now)],
      scales: { x: { time: opts.time !== false }, y: opts.yRange ? { range: opts.yRange } : {} },
      axes: [
        { stroke: "#57606a", grid: { stroke: "#eaeef2" },
          values: opts.time === false ? undefined : (u, ticks) => ticks.map((t) => I18N.time(t, (ticks[ticks.length - 1] - ticks[0]) > 86400 * 1.5)) },
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, size: 64, label: opts.yLabel || "",
          values: (u, ticks) => ticks.map((v) => I18N.num(v, opts.yDigits ?? 0)) },
      ],
      series: [
        { label: I18N.t("time"), value: (u, v) => (v == null ? "–" : I18N.dateTime(v)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width || 2,
          dash: s.dash ? DASH : undefined,
          paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
          spanGaps: false,
          points: { show: false },
          value: (u, v) => (v == null ? "–" : I18N.q(v, s.unit || "kW", s.digits ?? 0)),
        })),
      ],
    }, data, el);
    el._u = u;
    el._key = key;
    if (!el._ro) {
      el._ro = new ResizeObserver(() => {
        if (el._u && Math.abs(el._u.width - Math.max(el.clientWidth, 300)) > 2) {
          el._u.setSize({ width: Math.max(el.clientWidth, 300), height });
        }
      });
      el._ro.observe(el);
    }
    return u;
  },
  toSeconds,
  align,
  COLORS,
};
window.Charts = Charts;

/* The views: Now, Network, DR inbox, Health, Month to date, Keys. Each reads the API and
   draws; every figure is labelled measured or plan and written with its unit. */
"use strict";

const T = (k, v) => I18N.t(k, v);
const Q = (x, u, d) => I18N.q(x, u, d);
const S = Charts.toSeconds;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) if (kid !== null && kid !== undefined) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}

/* A figure card: a title, a value with its unit, and whose figure it is (measured / plan). */
function card(title, value, whose, sub, cls) {
  const words = typeof value === "string" && !/\d/.test(value);  // a word, not a figure: it may wrap
  return el("div", { class: `card stat ${cls || ""} ${words ? "words" : ""}` },
    el("div", { class: "stat-title" }, title),
    el("div", { class: "stat-value" }, value),
    el("div", { class: "stat-sub" }, el("span", { class: `tag ${whose}` }, T(whose)), sub ? ` ${sub}` : ""));
}

function table(node, head, rows) {
  node.replaceChildren(
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => (i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c)))))));
}

function last(a) { if (!a) return null; for (let i = a.length - 1; i >= 0; i--) if (a[i] !== null) return a[i]; return null; }
function pct(f) { return f === null || f === undefined ? null : 100 * f; }
function scale(a, k) { return a ? a.map((v) => (v === null ? null : v * k)) : null; }
function times(ts) { return ts.map(S); }

/* ---------------------------------------------------------------------------------------- */
const Views = {};
window.Views = Views;

Views.now = async (api) => {
  const early = App.prefetched ? await App.prefetched : null;
  App.prefetched = null;
  const doc = early || (await api("/api/v1/now"));
  performance.mark("vpp:now-data");
  App.docs.now = doc;
  const p = doc.plan, past = doc.past;
  Charts.now = S(doc.at);
  App.syncClock(doc.at);
  const latest = doc.latest.park;
  const imp = latest ? latest.p_kw : null;
  const limit = doc.connection.import_max_kw;
  const capNow = p && p.plan_dr_import_max_kw ? p.plan_dr_import_max_kw[0] : null;
  const socs = doc.batteries.map((b) => b.soc_frac).filter((x) => x !== null);
  $("now-cards").replaceChildren(
    card(T("card_import"), Q(imp, "kW"), "measured", latest ? T("at", { t: I18N.time(latest.ts) }) : ""),
    card(T("card_plan_now"), Q(p ? p.plan_p_net_kw[0] : null, "kW"), "plan", p ? `v${p.plan_version}` : ""),
    card(T("card_headroom"), Q(imp === null ? null : limit - imp, "kW"), "measured", `${T("limit")} ${Q(limit, "kW")}`),
    card(T("card_cap"), capNow === null ? T("none") : Q(capNow, "kW"), "plan", ""),
    card(T("card_pv"), Q(doc.latest.pv_kw, "kW"), "measured", ""),
    card(T("card_ev"), Q(doc.latest.ev_kw, "kW"), "measured", ""),
    card(T("card_soc"), socs.length ? Q(100 * socs.reduce((a, b) => a + b, 0) / socs.length, "pct", 1) : "–", "measured", ""),
  );
  const pt = times(past.times), at = p ? times(p.times) : [];
  const all = [...new Set([...pt, ...at])].sort((a, b) => a - b);
  const flat = (v) => all.map(() => v);
  const joined = (a, b) => [...(a || []).slice(0, -1), ...(b || [])];
  const jt = [...pt.slice(0, -1), ...at];
  const importData = Charts.align([
    { times: pt, values: past.p_net_kw },
    { times: pt, values: past.plan_p_net_kw },
    { times: at, values: p ? p.plan_p_net_kw : [] },
    { times: all, values: flat(limit) },
    { times: at, values: p ? p.plan_import_max_kw : [] },
    { times: jt, values: joined(past.plan_dr_import_max_kw, p && p.plan_dr_import_max_kw) },
    { times: jt, values: joined(past.plan_dr_import_min_kw, p && p.plan_dr_import_min_kw) },
    { times: at, values: p ? at.map(() => p.month_peak_import_kw) : [] },
  ]);
  const C = Charts.COLORS;
  Charts.draw($("chart-import"), [
    { label: T("s_import"), color: C.measured, width: 2.5 },
    { label: T("s_plan_past"), color: C.planPast, dash: true, width: 1.5 },
    { label: T("s_plan_ahead"), color: C.planAhead, dash: true, width: 2.5 },
    { label: T("s_limit"), color: C.limit, width: 1.5 },
    { label: T("s_limit_plan"), color: C.limitPlan, dash: true, width: 1 },
    { label: T("s_cap"), color: C.cap, stepped: true, width: 2 },
    { label: T("s_floor"), color: C.floor, stepped: true, width: 2 },
    { label: T("s_peak"), color: C.peak, dash: true, width: 1 },
  ], importData, { title: T("chart_import"), yLabel: "kW", yRange: importRange(importData, limit) });
  $("import-note").textContent = importData.offScale ? T("limit_off_scale", { kw: Q(limit, "kW") }) : "";
  Charts.draw($("chart-soc"), [
    { label: T("s_soc"), color: C.soc, unit: "pct", digits: 1 },
    { label: T("s_soc_plan"), color: C.socPlan, dash: true, unit: "pct", digits: 1 },
  ], Charts.align([
    { times: pt, values: scale(past.soc_frac, 100) },
    { times: at, values: p ? scale(p.plan_soc_frac, 100) : [] },
  ]), { title: T("chart_soc"), yLabel: "%", yRange: [0, 100] });
  Charts.draw($("chart-pvev"), [
    { label: T("s_pv"), color: C.pv },
    { label: T("s_pv_plan"), color: C.pvPlan, dash: true },
    { label: T("s_ev"), color: C.ev },
    { label: T("s_ev_plan"), color: C.evPlan, dash: true },
  ], Charts.align([
    { times: pt, values: past.pv_kw },
    { times: at, values: p ? p.plan_pv_kw : [] },
    { times: pt, values: past.ev_kw },
    { times: at, values: p ? p.plan_ev_kw : [] },
  ]), { title: T("chart_pv_ev"), yLabel: "kW" });
  table($("battery-table"), [T("b_name"), T("b_soc"), T("b_soc_plan_end"), T("b_p"), T("b_p_plan"), T("b_reading"), T("b_state")],
    doc.batteries.map((b) => [
      b.name, Q(pct(b.soc_frac), "pct", 1), Q(pct(b.plan_soc_frac), "pct", 1), Q(b.p_kw, "kW", 1),
      Q(b.plan_p_kw, "kW", 1), b.ts ? I18N.dateTime(b.ts) : "–",
      b.held ? el("span", { class: "flag held", title: b.held }, T("held")) : b.stale ? el("span", { class: "flag stale" }, T("stale")) : el("span", { class: "flag ok" }, T("ok")),
    ]));
  const flags = [];
  if (doc.stale_assets.length) flags.push(el("p", { class: "flag-line" }, el("span", { class: "flag stale" }, T("stale")), ` ${T("stale_assets")}: ${doc.stale_assets.join(", ")}`));
  const held = Object.entries(doc.held);
  if (held.length) flags.push(el("p", { class: "flag-line" }, el("span", { class: "flag held" }, T("held")), ` ${T("held_assets")}: `, held.map(([n, why]) => `${n} (${why})`).join("; ")));
  $("asset-flags").replaceChildren(...flags);
  staleRetry("now", p ? p.plan_version : null);
  if (!performance.getEntriesByName("vpp:now-drawn").length) performance.mark("vpp:now-drawn");
  $("view-now").dataset.planVersion = p ? String(p.plan_version) : "";
  document.body.dataset.shownPlanVersion = p ? String(p.plan_version) : "";
};

/* A document older than the plan the live stream announced (the service computes it right
   after the cycle): read it again shortly, a few times. */
const retries = {};
function staleRetry(view, version) {
  if (version !== null && App.planVersion !== null && version < App.planVersion) {
    retries[view] = (retries[view] || 0) + 1;
    if (retries[view] <= 20) setTimeout(() => App.refresh(view), 150);
  } else {
    retries[view] = 0;
  }
}

/* The import chart's y range: the park's figures with room above; the connection limit in
   view when it is near them, else named under the chart (a 10 MW limit over a 2 MW park
   would flatten every line). */
function importRange(data, limit) {
  let lo = 0, hi = 0;
  for (const ys of [data[1], data[2], data[3], data[6], data[7], data[8]]) {
    for (const y of ys) if (y !== null && Number.isFinite(y)) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  }
  hi = hi > 0 ? hi * 1.15 : 100;
  data.offScale = limit > hi * 1.4;
  if (!data.offScale) hi = Math.max(hi, limit * 1.05);
  return [lo < 0 ? lo * 1.15 : 0, hi];
}

/* ---- Network ----------------------------------------------------------------------------- */
const LOAD_BANDS = [[50, "#2da44e"], [80, "#bf8700"], [95, "#e16f24"], [100, "#cf222e"], [Infinity, "#82071e"]];
function loadColor(v) {
  if (v === null || v === undefined) return "#afb8c1";
  for (const [lim, c] of LOAD_BANDS) if (v < lim) return c;
  return "#82071e";
}
function voltColor(v, lim) {
  if (v === null || v === undefined) return "#afb8c1";
  const half = (lim.v_max_pu - lim.v_min_pu) / 2, mid = (lim.v_max_pu + lim.v_min_pu) / 2;
  const dev = Math.abs(v - mid) / half; // 1 = at the band's edge
  return dev < 0.5 ? "#2da44e" : dev < 0.8 ? "#bf8700" : dev <= 1 ? "#e16f24" : "#82071e";
}
const Net = { selected: null, mode: "measured" };

function branchValue(b, mode) {
  return mode === "measured" ? b.loading_percent : mode === "plan" ? b.plan_loading_percent : b.plan_loading_max_percent;
}
function busValue(b, mode) {
  if (mode === "measured") return b.vm_pu;
  if (mode === "plan") return b.plan_vm_pu;
  return b.plan_vm_min_pu === null ? null : (Math.abs(b.plan_vm_min_pu - 1) > Math.abs(b.plan_vm_max_pu - 1) ? b.plan_vm_min_pu : b.plan_vm_max_pu);
}

function drawNetwork(doc) {
  const NS = "http://www.w3.org/2000/svg";
  const W = 118, H = 84, PAD = 44, LEFT = 76; // room for the connection bus's voltage
  const cols = Math.max(...doc.buses.map((b) => b.x)) + 1, rows = Math.max(...doc.buses.map((b) => b.y)) + 1;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${cols * W + PAD + LEFT} ${rows * H + PAD * 1.5}`);
  svg.setAttribute("role", "group");
  svg.setAttribute("aria-label", T("tab_network"));
  const pos = Object.fromEntries(doc.buses.map((b) => [b.name, [LEFT + b.x * W, PAD + b.y * H]]));
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const binding = new Set(doc.binding.map((x) => x.element));
  const focusable = (g, name, label) => {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.setAttribute("aria-label", label);
    g.dataset.element = name;
    g.classList.add("net-el");
    if (Net.selected === name) g.classList.add("selected");
    const pick = () => { Net.selected = name; drawNetwork(doc); drawElement(doc); const again = svg.querySelector(`[data-element="${CSS.escape(name)}"]`); if (again) again.focus(); };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
  };
  for (const b of doc.branches) {
    const [x1, y1] = pos[b.from], [x2, y2] = pos[b.to];
    const v = branchValue(b, Net.mode);
    const g = mk("g", {});
    const color = loadColor(v);
    const width = v !== null && v >= 95 ? 7 : 5;
    const d = y1 === y2 || x1 === x2 ? `M${x1},${y1} L${x2},${y2}` : `M${x1},${y1} L${x1},${(y1 + y2) / 2} L${x2},${(y1 + y2) / 2} L${x2},${y2}`;
    g.append(mk("path", { d, stroke: color, "stroke-width": width, fill: "none", "stroke-linecap": "round", class: "branch" }));
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    if (b.kind === "trafo") {
      g.append(mk("circle", { cx: x1, cy: my - 7, r: 8, fill: "#fff", stroke: color, "stroke-width": 3 }));
      g.append(mk("circle", { cx: x1, cy: my + 5, r: 8, fill: "#fff", stroke: color, "stroke-width": 3 }));
      g.append(mk("text", { x: x1 + 13, y: my + 4, class: "net-label" }, `${b.name} ${v === null ? "–" : I18N.num(v, 0) + "%"}`));
    } else {
      g.append(mk("text", { x: mx, y: my - 8, class: "net-label mid" }, v === null ? "–" : `${I18N.num(v, 0)}%`));
    }
    if (binding.has(b.name)) g.classList.add("binding");
    focusable(g, b.name, `${T(b.kind)} ${b.name}: ${v === null ? "–" : Q(v, "pct", 1)}`);
    svg.append(g);
  }
  for (const b of doc.buses) {
    const [x, y] = pos[b.name];
    const v = busValue(b, Net.mode);
    const g = mk("g", {});
    g.append(mk("rect", { x: x - 16, y: y - 5, width: 32, height: 10, rx: 2, fill: voltColor(v, doc.limits), stroke: "#24292f", "stroke-width": b.slack ? 2.5 : 1 }));
    // A bus fed from above (a transformer's low-voltage side) is labelled below it.
    const below = doc.branches.some((br) => br.to === b.name && pos[br.from][1] < y);
    g.append(mk("text", { x, y: below ? y + 20 : y - 10, class: "net-label mid bus" }, b.name));
    g.append(mk("text", below ? { x, y: y + 32, class: "net-label mid small" } : { x: x - 20, y: y + 17, class: "net-label end small" },
      v === null ? "" : `${I18N.num(v, 3)} pu`));
    if (binding.has(b.name)) g.classList.add("binding");
    focusable(g, b.name, `${T("bus")} ${b.name}: ${v === null ? "–" : Q(v, "pu", 3)}`);
    svg.append(g);
  }
  $("net-drawing").replaceChildren(svg);
  $("net-drawing").dataset.elements = String(doc.branches.length + doc.buses.length);
  $("net-legend").replaceChildren(
    el("span", {}, T("legend_loading")),
    ...[["<50%", "#2da44e"], ["50–80%", "#bf8700"], ["80–95%", "#e16f24"], ["95–100%", "#cf222e"], [">100%", "#82071e"]].map(([t, c]) => {
      const sw = el("span", { class: "swatch" });
      sw.style.background = c;
      return el("span", { class: "legend-item" }, sw, t);
    }),
    el("span", { class: "legend-v" }, T("legend_v", { lo: doc.limits.v_min_pu, hi: doc.limits.v_max_pu })),
  );
  const when = Net.mode === "measured" ? T("net_when_measured", { t: doc.realised_at ? I18N.dateTime(doc.realised_at) : "–" })
    : Net.mode === "plan" ? T("net_when_plan", { v: doc.plan_version, t: doc.plan_times.length ? I18N.dateTime(doc.plan_times[0]) : "–" })
    : T("net_when_planmax", { v: doc.plan_version });
  $("net-when").textContent = when;
}

function drawElement(doc) {
  const name = Net.selected || (doc.branches.find((b) => b.kind === "trafo") || doc.branches[0] || {}).name;
  if (!name) return;
  const b = doc.branches.find((x) => x.name === name);
  const bus = b ? null : doc.buses.find((x) => x.name === name);
  const rt = times(doc.times), pt = times(doc.plan_times);
  const C = Charts.COLORS;
  if (b) {
    $("element-title").textContent = `${T(b.kind)} ${b.name} (${b.rating}) · ${T("s_loading")}`;
    const lim = doc.limits.loading_max_percent;
    Charts.draw($("chart-element"), [
      { label: T("s_loading"), color: C.measured, unit: "pct", digits: 1 },
      { label: T("s_loading_plan"), color: C.planAhead, dash: true, unit: "pct", digits: 1 },
      { label: T("limit"), color: C.limit, width: 1, unit: "pct" },
    ], Charts.align([
      { times: rt, values: b.loading_percent_series || [] },
      { times: pt, values: b.plan_loading_percent_series || [] },
      { times: [...rt, ...pt], values: [...rt, ...pt].map(() => lim) },
    ]), { title: b.name, yLabel: "%" });
  } else if (bus) {
    $("element-title").textContent = `${T("bus")} ${bus.name} · ${T("s_v")}`;
    Charts.draw($("chart-element"), [
      { label: T("s_v"), color: C.measured, unit: "pu", digits: 3 },
      { label: T("s_v_plan"), color: C.planAhead, dash: true, unit: "pu", digits: 3 },
      { label: `${T("limit")} min`, color: C.limit, width: 1, unit: "pu", digits: 3 },
      { label: `${T("limit")} max`, color: C.limit, width: 1, unit: "pu", digits: 3 },
    ], Charts.align([
      { times: rt, values: bus.vm_pu_series || [] },
      { times: pt, values: bus.plan_vm_pu_series || [] },
      { times: [...rt, ...pt], values: [...rt, ...pt].map(() => doc.limits.v_min_pu) },
      { times: [...rt, ...pt], values: [...rt, ...pt].map(() => doc.limits.v_max_pu) },
    ]), { title: bus.name, yLabel: "pu", yDigits: 3 });
  }
}

Views.network = async (api) => {
  const doc = await api("/api/v1/network");
  App.docs.network = doc;
  if (!doc.available) {
    $("net-drawing").replaceChildren(el("p", { class: "muted" }, T("net_unavailable", { why: doc.why })));
    return;
  }
  staleRetry("network", doc.plan_version);
  drawNetwork(doc);
  drawElement(doc);
  const items = doc.binding.map((x) => el("li", { class: x.broken ? "bad" : "warn" },
    el("span", { class: `tag ${x.source}` }, T(x.source === "plan" ? "plan" : "measured")), " ",
    el("strong", {}, x.element), ` ${T(`k_${x.kind}`)}: `,
    x.value === null ? "" : `${I18N.num(x.value, x.unit === "pu" ? 3 : 1)} ${x.unit === "%" ? "%" : I18N.unit(x.unit)} / ${T("limit")} ${I18N.num(x.limit, x.unit === "pu" ? 3 : 1)} ${x.unit === "%" ? "%" : I18N.unit(x.unit)}`,
    x.row ? ` (${x.row})` : "",
    x.at ? ` · ${I18N.dateTime(x.at)}` : "",
    ` · ${T(x.broken ? "broken" : "binds")}`));
  $("binding-list").replaceChildren(...(items.length ? items : [el("li", { class: "ok" }, T("no_binding"))]));
  table($("element-table"), [T("e_name"), T("e_kind"), T("e_rating"), T("e_load"), T("e_load_24h"), T("e_load_plan"), T("e_load_planmax")],
    doc.branches.map((b) => [b.name, T(b.kind), b.rating, Q(b.loading_percent, "pct", 1), Q(b.loading_max_percent_24h, "pct", 1), Q(b.plan_loading_percent, "pct", 1), Q(b.plan_loading_max_percent, "pct", 1)]));
  table($("bus-table"), [T("bus_h"), "kV", T("v_meas"), T("v_plan"), T("v_plan_range")],
    doc.buses.map((b) => [b.name, I18N.num(b.vn_kv, 1), Q(b.vm_pu, "pu", 3), Q(b.plan_vm_pu, "pu", 3),
      b.plan_vm_min_pu === null ? "–" : `${I18N.num(b.plan_vm_min_pu, 3)}–${I18N.num(b.plan_vm_max_pu, 3)} pu`]));
};

/* ---- DR inbox ---------------------------------------------------------------------------- */
const DR = { message: null };
const OPEN = new Set(["announced", "confirmed", "active"]);

function drWindows(f) {
  return (f.windows || []).map((w) => `${I18N.dateTime(w.start)}–${I18N.time(w.end)}`).join(", ");
}

function expectedText(x) {
  if (!x) return "–";
  const parts = [];
  if (x.response_mean_kw !== undefined) parts.push(Q(x.response_mean_kw, "kW"));
  if (x.target_kw !== undefined) parts.push(`/ ${Q(x.target_kw, "kW")}`);
  if (x.delivered_kwh !== undefined) parts.push(Q(x.delivered_kwh, "kWh"));
  if (x.import_max_kw !== undefined) parts.push(`${T("dr_cap_kw")} ${Q(x.import_max_kw, "kW")}`);
  return parts.length ? parts.join(" · ").replace(" · /", " /") : Object.entries(x).filter(([, v]) => typeof v === "number").slice(0, 3).map(([k, v]) => `${k} ${I18N.num(v, 1)}`).join(", ");
}

async function decide(api, ev, action) {
  const q = T(action === "confirm" ? "confirm_q" : "decline_q", { id: ev.event_id });
  if (!window.confirm(q)) return;
  try {
    const out = await api(`/api/v1/dr-events/${encodeURIComponent(ev.event_id)}/${action}`, { method: "POST", body: { note: `${action} on the operator page` } });
    const plan = out.plan || {};
    const said = plan.state === "planned" ? "dr_done_planned" : "dr_done_pending";
    DR.message = { ok: true, text: T(said, { id: ev.event_id, status: T(`st_${out.status}`), v: plan.version || "" }) };
    document.body.dataset.lastDecision = JSON.stringify({ event_id: ev.event_id, status: out.status, plan_version: plan.version || null, plan_state: plan.state || null });
  } catch (e) {
    DR.message = { ok: false, text: e.status === 403 ? T("refused_403") : T("dr_refused", { detail: e.detail || e.message }) };
  }
  await App.refresh("dr");
  App.refresh("now");
}

Views.dr = async (api) => {
  const events = await api("/api/v1/dr-events");
  App.docs.dr = events;
  const filter = $("dr-filter").value;
  const shown = events.filter((e) => filter === "all" || OPEN.has(e.status)).sort((a, b) => (a.fields.windows[0].start < b.fields.windows[0].start ? 1 : -1));
  const canDecide = App.may("operate");
  $("dr-note").textContent = canDecide ? "" : T("viewer_note");
  const now = App.parkNow();  // deadlines on the service's clock
  const cards = shown.map((ev) => {
    const f = ev.fields, ns = ev.next_step || {};
    const deadline = f.confirm_deadline;
    const left = deadline ? (Date.parse(deadline) - now) / 1000 : null;
    const d = ev.delivery;
    const rows = [
      [T("dr_direction"), T(f.direction) + (f.issuer ? ` · ${f.issuer}` : "")],
      [T("dr_window"), drWindows(f)],
      [T("dr_requested"), Q(f.requested_kw, "kW") + (f.import_cap_kw !== null && f.import_cap_kw !== undefined ? ` · ${T("dr_cap_kw")} ${Q(f.import_cap_kw, "kW")}` : "")],
      [T("dr_deadline"), !deadline ? "–" : ev.status !== "announced" ? I18N.dateTime(deadline)
        : `${I18N.dateTime(deadline)} · ${left > 0 ? T("dr_left", { d: I18N.duration(left) }) : T("dr_overdue")}`],
      [el("span", {}, el("span", { class: "tag plan" }, T("plan")), ` ${T("dr_expected")}`), expectedText(ev.expected_delivery)],
      [el("span", {}, el("span", { class: "tag measured" }, T("measured")), ` ${T("dr_settled")}`),
        d ? `${Q(d.delivered_kwh, "kWh")} / ${Q(d.requested_kwh, "kWh")}${d.delivery_ratio !== null && d.delivery_ratio !== undefined ? ` · ${T("ratio", { r: I18N.num(100 * d.delivery_ratio, 0) + "%" })}` : ""} · ${T(d.effective ? "effective" : "not_effective")}` : "–"],
      [el("span", {}, el("span", { class: "tag measured" }, T("measured")), ` ${T("dr_comp")}`), d && d.compensation_cny !== undefined && d.compensation_cny !== null ? Q(d.compensation_cny, "CNY", 2) : "–"],
    ];
    const actions = [];
    if (canDecide && ev.status === "announced") {
      actions.push(el("button", { type: "button", class: "primary", "data-action": "confirm", onclick: () => decide(api, ev, "confirm") }, T("confirm")));
      actions.push(el("button", { type: "button", class: "ghost", "data-action": "decline", onclick: () => decide(api, ev, "decline") }, T("decline")));
    }
    return el("article", { class: `card dr ${ev.status}`, "data-event": ev.event_id, "data-status": ev.status },
      el("header", { class: "dr-head" },
        el("h2", {}, ev.event_id),
        el("span", { class: `state ${ev.status}` }, T(`st_${ev.status}`)),
        ns.state ? el("span", { class: "muted" }, ` ${T(`ns_${ns.state}`)} · ${T(ns.honoured_by_plan ? "honoured" : "not_honoured")}`) : ""),
      el("dl", { class: "kv" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      actions.length ? el("div", { class: "actions" }, actions) : "");
  });
  const msg = DR.message ? el("p", { class: DR.message.ok ? "ok-msg" : "error", role: "status" }, DR.message.text) : null;
  $("dr-list").replaceChildren(...(msg ? [msg] : []), ...(cards.length ? cards : [el("p", { class: "muted" }, T("dr_none"))]));
};

/* ---- Health ------------------------------------------------------------------------------ */
Views.healthPill = async () => {
  try {
    const r = await fetch("/health", { cache: "no-store" });
    const h = await r.json();
    const pill = $("health-pill");
    pill.dataset.status = h.status;
    pill.textContent = T(`status_${h.status}`);
    pill.title = (h.problems || []).join("\n");
    return h;
  } catch (e) {
    const pill = $("health-pill");
    pill.dataset.status = "failing";
    pill.textContent = T("status_failing");
    return null;
  }
};

Views.health = async (api) => {
  // Field devices (vpp run --driver field): their faults, where the service has them.
  const devices = api("/api/v1/devices").catch(() => null);
  const [h, cycles, dev] = await Promise.all([Views.healthPill(), api("/api/v1/cycles?limit=48"), devices]);
  App.docs.health = h;
  if (!h) throw new Error("/health");
  const lc = h.last_cycle || {};
  const planner = h.planner || {};
  if (h.lease && h.lease.detail) h.lease.title = h.lease.detail;
  $("health-cards").replaceChildren(
    card(T("h_status"), el("span", { class: `pill big`, "data-status": h.status }, T(`status_${h.status}`)), "measured", ""),
    card(T("h_last_cycle"), lc.id ? `#${lc.id}` : "–", "measured", lc.at ? `${I18N.dateTime(lc.at)} · ${T("h_age", { s: I18N.num(lc.age_s, 0) })}` : ""),
    card(T("h_planner"), planner.process ? T(planner.alive ? "alive" : "dead") : T("inline"), "measured", ""),
    card(T("h_db"), h.database === "ok" ? T("ok") : h.database || "–", "measured", ""),
    card(T("h_lease"), h.lease ? trWord("lease", h.lease.state) : "–", "measured", ""),
  );
  const reasons = (h.reasons || []).map((r) => el("li", { class: r.level === "failing" ? "bad" : "warn" }, el("span", { class: "pill", "data-status": r.level }, T(`status_${r.level}`)), " ", r.text));
  $("health-reasons").replaceChildren(...(reasons.length ? reasons : [el("li", { class: "ok" }, T("no_reasons"))]));
  const faults = [];
  for (const [kind, e] of Object.entries(h.errors_recent || {})) faults.push(el("li", { class: "bad" }, T("errors_of", { kind, n: e.count, last: e.last })));
  for (const [name, why] of Object.entries((dev && dev.faults) || {})) faults.push(el("li", { class: "bad" }, el("strong", {}, name), ` ${why}`));
  for (const [name, c] of Object.entries((dev && dev.noncompliant) || {})) {
    faults.push(el("li", { class: "warn" }, el("strong", {}, name), ` ${T("noncompliant", { kw: Q(c.metered_kw, "kW", 1), limit: Q(c.limit_kw, "kW", 1) })}`));
  }
  for (const a of h.stale_assets || []) faults.push(el("li", { class: "warn" }, el("span", { class: "flag stale" }, T("stale")), ` ${a}`));
  for (const [a, why] of Object.entries(h.held || {})) faults.push(el("li", { class: "warn" }, el("span", { class: "flag held" }, T("held")), ` ${a}: ${why}`));
  $("health-faults").replaceChildren(...(faults.length ? faults : [el("li", { class: "ok" }, T("no_faults"))]));
  // x: each cycle's interval (park time); a re-solve in the same interval a second later
  const cs = [...cycles].sort((a, b) => (a.id - b.id));
  const tx = [];
  for (const c of cs) { const t = S(c.at); tx.push(tx.length && t <= tx[tx.length - 1] ? tx[tx.length - 1] + 1 : t); }
  const tm = (k) => cs.map((c) => (c.timings_s && c.timings_s[k] !== undefined ? c.timings_s[k] : null));
  const C = Charts.COLORS;
  Charts.draw($("chart-timings"), [
    { label: T("s_total"), color: C.total, unit: "s", digits: 3 },
    { label: T("s_planner"), color: C.planner, unit: "s", digits: 3 },
    { label: T("s_solver"), color: C.solver, unit: "s", digits: 3 },
    { label: T("s_grid"), color: C.grid, unit: "s", digits: 3 },
  ], [tx, tm("total_s"), tm("planner_s"), tm("dispatch_s"), tm("validate_s")], { title: T("chart_timings"), yLabel: I18N.unit("s"), yDigits: 2, nowLine: false });
  table($("cycle-table"), [T("c_id"), T("c_at"), T("c_trigger"), T("c_status"), T("c_fallback"), T("c_total"), T("c_errors")],
    [...cycles].slice(0, 20).map((c) => [`#${c.id}`, I18N.dateTime(c.at), c.trigger.split("+").map((x) => trWord("tr", x)).join(" + "), trWord("sv", c.solver_status),
      c.fallback ? el("span", { class: "flag held" }, c.fallback) : "–", Q(c.timings_s ? c.timings_s.total_s : null, "s", 3),
      (c.errors || []).length ? el("span", { class: "flag stale", title: c.errors.join("\n") }, String(c.errors.length)) : "–"]));
};

function trWord(prefix, x) {
  const k = `${prefix}_${x}`;
  const t = T(k);
  return t === k ? x : t;
}

/* ---- Month to date ----------------------------------------------------------------------- */
Views.month = async (api) => {
  const m = await api("/api/v1/month-to-date");
  App.docs.month = m;
  $("month-period").textContent = T("month_period", { m: m.month, from: I18N.dateTime(m.from), to: I18N.dateTime(m.to), n: I18N.num(m.intervals_metered), all: I18N.num(m.intervals) });
  $("month-cards").replaceChildren(
    card(T("m_energy"), Q(m.energy.energy_cost_cny, "CNY", 0), "measured", `${Q(m.energy.import_kwh, "kWh")}`),
    card(T("m_demand"), Q(m.demand.demand_charge_cny, "CNY", 0), "measured", T("m_peak", { kw: Q(m.demand.peak_import_kw, "kW"), t: m.demand.peak_at ? I18N.dateTime(m.demand.peak_at) : "–" })),
    card(T("m_dr"), Q(m.dr.compensation_cny, "CNY", 0), "measured", ""),
    card(T("m_total"), Q(m.total_cost_cny, "CNY", 0), "measured", ""),
    card(T("m_co2"), Q(m.carbon.co2_t, "tCO2", 2), "measured", ""),
    card(T("m_tce"), Q(m.carbon.tce_equivalent, "tce", 2), "measured", T("m_tce_eq")),
  );
  const tg = m.targets;
  const met = (x) => (x === null || x === undefined ? "" : ` · ${T(x ? "m_met" : "m_not_met")}`);
  table($("carbon-table"), [T("m_figure"), T("m_value"), T("m_target")], [
    [T("m_import"), Q(m.energy.import_kwh, "kWh"), "–"],
    [T("m_export"), Q(m.energy.export_kwh, "kWh"), "–"],
    [T("m_pv"), Q(m.energy.pv_used_kwh, "kWh"), "–"],
    [T("m_consumption"), Q(m.energy.consumption_kwh, "kWh"), "–"],
    [T("m_co2"), Q(m.carbon.co2_t, "tCO2", 3), "–"],
    [T("m_tce_eq"), Q(m.carbon.tce_equivalent, "tce", 3), "–"],
    [T("m_tce_ev"), Q(m.carbon.tce_equal_value, "tce", 3), "–"],
    [T("m_intensity"), tg.intensity_tce_per_10k_cny === null ? T("m_no_value_added") : `${I18N.num(tg.intensity_tce_per_10k_cny, 5)} ${I18N.unit("tce10k")}${met(tg.intensity_met)}`,
      `≤ ${I18N.num(tg.intensity_target_tce_per_10k_cny, 2)} ${I18N.unit("tce10k")}`],
    [T("m_yoy"), tg.co2_intensity_yoy_change_frac === null ? T("m_no_last_year", { n: I18N.num(tg.last_year_intervals_metered), all: I18N.num(m.intervals) }) : `${I18N.num(100 * tg.co2_intensity_yoy_change_frac, 1)}%${met(tg.co2_intensity_yoy_met)}`,
      `≤ ${I18N.num(100 * tg.co2_intensity_yoy_target_frac, 0)}%`],
    [T("m_factor"), `${I18N.num(m.carbon.ef_kg_per_kwh, 4)} ${I18N.unit("kgkwh")}`, "–"],
  ]);
  const dr = m.dr.events;
  table($("month-dr-table"), [T("m_event"), T("dr_window"), T("dr_settled"), T("dr_comp")],
    dr.length ? dr.map((e) => [e.event_id, I18N.dateTime(e.window_start), `${Q(e.delivered_kwh, "kWh")} / ${Q(e.requested_kwh, "kWh")}`, Q(e.compensation_cny, "CNY", 2)])
      : [[T("m_no_dr"), "", "", ""]]);
};

/* ---- Keys (admin) ------------------------------------------------------------------------ */
Views.keys = async (api) => {
  if (!App.may("admin")) return;
  const keys = await api("/api/v1/keys");
  table($("key-table"), [T("key_name"), T("key_role"), T("k_created"), T("k_state"), ""],
    keys.map((k) => [k.name, T(`role_${k.role}`), I18N.dateTime(k.created_at), k.revoked ? T("revoked") : T("active"),
      k.revoked ? "" : el("button", { type: "button", class: "ghost danger", onclick: async () => {
        if (!window.confirm(T("revoke_q", { name: k.name }))) return;
        try { await api(`/api/v1/keys/${encodeURIComponent(k.name)}`, { method: "DELETE" }); } catch (e) { App.setBanner(e.detail || e.message); }
        App.refresh("keys");
      } }, T("revoke"))]));
};

Views.wire = (api) => {
  for (const r of document.querySelectorAll('input[name="net-mode"]')) {
    r.addEventListener("change", () => { Net.mode = r.value; if (App.docs.network && App.docs.network.available) drawNetwork(App.docs.network); });
  }
  $("dr-filter").addEventListener("change", () => App.refresh("dr"));
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("key-created");
    try {
      const k = await api("/api/v1/keys", { method: "POST", body: { name: $("key-name").value.trim(), role: $("key-role").value } });
      out.textContent = T("key_shown_once", { name: k.name, role: T(`role_${k.role}`), key: k.key });
      out.hidden = false;
      $("key-name").value = "";
    } catch (err) {
      out.textContent = err.detail || err.message;
      out.hidden = false;
    }
    App.refresh("keys");
  });
};

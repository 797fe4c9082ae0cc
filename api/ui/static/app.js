/* The operator's page: sign-in with an API key, the views, live updates.
   The page calls the service's API with the key and holds no privilege of its own: what it
   offers follows GET /api/v1/me, and the API checks every call. */
"use strict";

const STORE_KEY = "vpp.key";
const STORE_LANG = "vpp.lang";
const VIEWS = ["now", "network", "dr", "health", "month", "keys"];
const REFRESH_S = 15; // every view is read again at least this often (deadlines, ages)

const App = {
  key: null,
  me: null,
  view: "now",
  planVersion: null,
  cycleId: null,
  docs: {},
  timer: null,
  loading: {},
};
window.App = App;

function $(id) { return document.getElementById(id); }

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
}

function detailText(body) {
  if (!body) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(body);
}

async function api(path, { method = "GET", body, key } = {}) {
  const headers = { Authorization: `Bearer ${key || App.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) {
    if (r.status === 401 && !key) signOut(I18N.t("bad_key", { detail: detailText(json) }));
    throw new ApiError(r.status, detailText(json) || `HTTP ${r.status}`);
  }
  return json;
}
App.api = api;

/* ---- sign-in -------------------------------------------------------------------------- */
function storedKey() {
  return sessionStorage.getItem(STORE_KEY) || localStorage.getItem(STORE_KEY);
}

async function signIn(key, remember) {
  const err = $("signin-error");
  err.textContent = "";
  // The Now view's figures are asked for with the key check, not after it: the first
  // paint waits for one round trip, not two.
  const wanted = (location.hash || "#now").slice(1);
  App.prefetched = wanted === "now" ? api("/api/v1/now", { key }).catch(() => null) : null;
  try {
    const me = await api("/api/v1/me", { key });
    App.key = key;
    App.me = me;
    (remember ? localStorage : sessionStorage).setItem(STORE_KEY, key);
    I18N.tz = me.tz;
    syncClock(me.now, me.clock_speed);
    enter();
  } catch (e) {
    err.textContent = e instanceof ApiError ? I18N.t("bad_key", { detail: e.detail }) : I18N.t("no_service", { detail: e.message });
    $("signin").hidden = false;
    $("key").focus();
  }
}

function signOut(message) {
  App.key = null;
  App.me = null;
  sessionStorage.removeItem(STORE_KEY);
  localStorage.removeItem(STORE_KEY);
  Live.stop();
  clearInterval(App.timer);
  document.body.classList.remove("signed-in");
  $("tabs").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  for (const v of VIEWS) $(`view-${v}`).hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("key").value = "";
  $("key").focus();
}

function may(perm) { return !!App.me && App.me.may.includes(perm); }
App.may = may;

function enter() {
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("signout").hidden = false;
  document.body.classList.add("signed-in");
  document.body.dataset.role = App.me.role;
  $("tab-keys").hidden = !may("admin");
  $("park-name").textContent = App.me.park;
  $("footer-zone").textContent = App.me.tz;
  showWho();
  const wanted = (location.hash || "").slice(1);
  show(VIEWS.includes(wanted) && (wanted !== "keys" || may("admin")) ? wanted : "now", false);
  Live.start();
  clearInterval(App.timer);
  App.timer = setInterval(tick, 1000);
  tick();
}

function showWho() {
  if (!App.me) return;
  $("who").textContent = `${App.me.name} · ${I18N.t(`role_${App.me.role}`)}`;
}

/* ---- views ---------------------------------------------------------------------------- */
function show(view, focus = true) {
  App.view = view;
  for (const v of VIEWS) {
    const tab = $(`tab-${v}`);
    const on = v === view;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
    $(`view-${v}`).hidden = !on;
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  if (focus) $(`tab-${view}`).focus();
  refresh(view);
}

async function refresh(view = App.view) {
  if (!App.key || App.loading[view]) return;
  App.loading[view] = true;
  try {
    await Views[view](api);
    setBanner(null);
  } catch (e) {
    if (e instanceof ApiError && e.status === 503 && view === "network") {
      setTimeout(() => refresh("network"), 1000);
    } else if (App.key) {
      setBanner(I18N.t("stale_data", { detail: e.detail || e.message }));
    }
  } finally {
    App.loading[view] = false;
  }
}
App.refresh = refresh;

function setBanner(text) {
  const b = $("banner");
  b.hidden = !text;
  b.textContent = text || "";
}
App.setBanner = setBanner;

/* The park's clock: the service's (simulated when it runs faster), kept from /api/v1/me
   and each Now document, advanced at its speed in between. */
const ParkClock = { at: Date.now(), wall: Date.now(), speed: 1 };
function syncClock(iso, speed) {
  ParkClock.at = Date.parse(iso);
  ParkClock.wall = Date.now();
  if (speed) ParkClock.speed = speed;
}
App.syncClock = syncClock;
function parkNow() { return ParkClock.at + (Date.now() - ParkClock.wall) * ParkClock.speed; }
App.parkNow = parkNow;

let lastRefresh = Date.now();
function tick() {
  $("clock").textContent = new Intl.DateTimeFormat(I18N.lang, {
    timeZone: I18N.tz, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date(parkNow())) + ` (${I18N.tz}${ParkClock.speed !== 1 ? `, ×${ParkClock.speed}` : ""})`;
  if (Date.now() - lastRefresh > REFRESH_S * 1000) {
    lastRefresh = Date.now();
    refresh();
    Views.healthPill(api);
  }
}

/* ---- live updates: server-sent events read with fetch (the key goes in a header) ------ */
const Live = {
  ctrl: null,
  failures: 0,
  pollTimer: null,
  running: false,

  start() {
    this.stop();
    this.running = true;
    this.loop();
  },
  stop() {
    this.running = false;
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  },
  state(s) { const el = $("live"); el.dataset.state = s; el.textContent = I18N.t(`live_${s}`); },

  async loop() {
    while (this.running && App.key) {
      try {
        this.ctrl = new AbortController();
        const r = await fetch("/api/v1/updates", { headers: { Authorization: `Bearer ${App.key}` }, signal: this.ctrl.signal, cache: "no-store" });
        if (r.status === 401) { signOut(I18N.t("bad_key", { detail: "401" })); return; }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        this.failures = 0;
        this.state("on");
        await this.read(r.body.getReader());
      } catch (e) {
        if (!this.running) return;
        this.failures += 1;
        this.state(this.failures > 2 ? "poll" : "off");
        if (this.failures > 2) this.poll();
        await new Promise((res) => setTimeout(res, Math.min(500 * this.failures, 5000)));
      }
    }
  },
  async read(reader) {
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let ev = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) ev = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (ev === "cycle" && data) onCycle(JSON.parse(data));
        if (ev === "revoked") { signOut(I18N.t("bad_key", { detail: "revoked" })); return; }
      }
    }
  },
  /* After repeated stream failures: poll the setpoints' plan version every 2 s until the
     stream is back. */
  poll() {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(async () => {
      try {
        const sp = await api("/api/v1/setpoints");
        onCycle({ cycle_id: sp.cycle_id, plan_version: sp.plan_version, at: sp.at, fallback: sp.fallback });
      } catch { /* the banner says it */ }
      if (this.failures === 0) { clearInterval(this.pollTimer); this.pollTimer = null; }
    }, 2000);
  },
};
App.Live = Live;

function onCycle(ev) {
  if (ev.plan_version === undefined) return;
  const changed = ev.plan_version !== App.planVersion || ev.cycle_id !== App.cycleId;
  App.planVersion = ev.plan_version;
  App.cycleId = ev.cycle_id;
  document.body.dataset.livePlanVersion = String(ev.plan_version);
  if (changed) {
    lastRefresh = Date.now();
    refresh();
    Views.healthPill(api);
  }
}

/* ---- language ------------------------------------------------------------------------- */
function setLang(lang) {
  I18N.lang = lang;
  localStorage.setItem(STORE_LANG, lang);
  $("lang").value = lang;
  I18N.apply();
  showWho();
  Live.state(Live.running ? (Live.failures ? "off" : "on") : "off");
  if (App.key) { refresh(); Views.healthPill(api); }
}

/* ---- wiring --------------------------------------------------------------------------- */
function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("key").value.trim(), $("remember").checked);
  });
  $("signout").addEventListener("click", () => signOut());
  $("lang").addEventListener("change", (e) => setLang(e.target.value));
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => show(tab.dataset.view));
    tab.addEventListener("keydown", (e) => {
      const shown = tabs.filter((t) => !t.hidden);
      const i = shown.indexOf(tab);
      let j = null;
      if (e.key === "ArrowRight") j = (i + 1) % shown.length;
      if (e.key === "ArrowLeft") j = (i - 1 + shown.length) % shown.length;
      if (e.key === "Home") j = 0;
      if (e.key === "End") j = shown.length - 1;
      if (j !== null) { e.preventDefault(); show(shown[j].dataset.view); }
    });
  }
  Views.wire(api);
}

document.addEventListener("DOMContentLoaded", () => {
  const lang = localStorage.getItem(STORE_LANG) || (navigator.language && navigator.language.startsWith("zh") ? "zh-CN" : "en");
  I18N.lang = WORDS[lang] ? lang : "zh-CN";
  $("lang").value = I18N.lang;
  I18N.apply();
  wire();
  const key = storedKey();
  if (key) signIn(key, !!localStorage.getItem(STORE_KEY));
  else { $("signin").hidden = false; $("key").focus(); }
});

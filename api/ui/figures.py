"""The figures the operator's page shows that the other resources do not give: the park's
import measured against what was planned for each interval of the past day and the plan
ahead, the network's loading per element (realised from the stored telemetry and planned),
and the month to date (energy cost, demand charge and its peak, DR compensation, CO2 and
standard coal).

Every name follows the house rule: ``plan_*`` is what the dispatch intended, a plain name is
what the park did (the stored readings). Each document is computed once per change of what
it depends on (plan version, newest park-meter reading) and kept, so the page's polling costs
a dictionary look-up between cycles; the computations run in the API's worker threads, one
at a time per document.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select

from api.times import localise
from vpp.park.model import PARK_METER, Horizon, Site
from vpp.store import tables
from vpp.store.readings import asset_means, hold_last

log = logging.getLogger(__name__)
PAST_INTERVALS_H = 24  # the Now view's history
BINDING_LOADING_FRAC = 0.95  # an element within 5 % of its rating binds
BINDING_V_PU = 0.005  # a bus voltage within this of its band binds
WARM_EVERY_S = 0.1  # how often the warmer looks for a new plan or reading
WARM_IDLE_S = 120.0  # the warmer stops when no page asked for this long


def _floor(t: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
    return epoch + math.floor((t - epoch) / step + 1e-9) * step


def series(a: Sequence[float] | np.ndarray | None, digits: int = 3) -> list[float | None] | None:
    """A JSON list: rounded, ``None`` where not finite (no reading, no limit)."""
    if a is None:
        return None
    x = np.asarray(a, float)
    ok = np.isfinite(x)
    return [
        v if k else None
        for v, k in zip(np.round(np.where(ok, x, 0.0), digits).tolist(), ok, strict=True)
    ]


def _times(h: Horizon) -> list[str]:
    return [t.isoformat() for t in h.times()]


class _Cached:
    """One document kept until its stamp changes; computed by one thread at a time.

    ``wait`` False (a request while the warmer keeps the documents fresh): the last
    document is returned at once even when a newer one is being computed; its own
    ``plan_version`` says which plan it shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: Any = object()
        self._doc: Any = None

    def get(self, stamp: Any, compute: Callable[[], Any], wait: bool = True) -> Any:
        if self._stamp == stamp or (not wait and self._doc is not None):
            return self._doc
        with self._lock:
            if self._stamp != stamp:
                self._doc = compute()
                self._stamp = stamp
            return self._doc


@dataclass
class _PastPlan:
    """What the plan in force for an interval intended there (its first interval)."""

    version: int
    p_net_kw: float
    dr_import_max_kw: float = math.inf
    dr_import_min_kw: float = -math.inf


# ------------------------------------------------------------------------------------------
# Stored readings
# ------------------------------------------------------------------------------------------
def _ffill(a: np.ndarray) -> np.ndarray:
    """Each row's NaN replaced by the row's last value before it (NaN before the first)."""
    return hold_last(a)


# ------------------------------------------------------------------------------------------
# The figures
# ------------------------------------------------------------------------------------------
class UiFigures:
    """The page's documents for one runtime (``app.state.ui_figures``)."""

    def __init__(self, runtime) -> None:
        self.rt = runtime
        self.site: Site = runtime.site
        self.zone = ZoneInfo(self.site.location.tz)
        self.step = timedelta(minutes=self.site.dispatch.step_minutes)
        a = self.site.assets
        self.pv_names = [p.name for p in a.pv_arrays] + [p.pv.name for p in a.pedf_buildings]
        self.ev_names = [c.name for c in a.ev_chargers]
        self.batteries = [(b.name, b.e_kwh) for b in a.batteries] + [
            (p.battery.name, p.battery.e_kwh) for p in a.pedf_buildings
        ]
        self._past: dict[datetime, _PastPlan] = {}
        self._past_version = 0
        self._past_lock = threading.Lock()
        self._now = _Cached()
        self._net = _Cached()
        self._mtd = _Cached()
        self._grid = None
        self._flows: dict[datetime, tuple] = {}  # realised flow per interval (network_view)
        self._warm_docs: set[str] = set()  # kept fresh by the warmer: a request need not wait
        self._asked: dict[str, float] = {}  # when a page last asked for each document
        self._bodies: dict[str, tuple[Any, bytes]] = {}
        self._grid_error: str | None = None
        self._grid_ready = threading.Event()
        self._grid_started = False
        self._warmer_on = False
        self._asked_s = time.monotonic()
        self._grid_lock = threading.Lock()
        self.flow_lock = threading.Lock()  # the network model's arrays: one flow at a time

    # -- stamps ------------------------------------------------------------------------------
    def _meter_ts(self) -> datetime | None:
        r = self.rt.readings().get(PARK_METER)
        return r.ts if r is not None else None

    def _stamp(self) -> tuple:
        """What the documents depend on: the plan in force and the newest park-meter reading
        (the past day's window moves with the readings, which come with the cycles)."""
        cur = self.rt.current
        return (cur.version if cur else None, self._meter_ts())

    # -- the plan for each past interval ----------------------------------------------------
    def _past_plans(self, since: datetime) -> dict[datetime, _PastPlan]:
        """Interval start -> what the last plan that started there intended for it. Read
        from the stored plans once, then kept up to date from the plan in force."""
        cur = self.rt.current
        with self._past_lock:
            if cur is not None and cur.version > self._past_version:
                if self._past_version and cur.version == self._past_version + 1:
                    self._note(cur)
                else:
                    self._backfill(since, self._past_version)
                    self._note(cur)
                self._past_version = cur.version
            for t in [t for t in self._past if t < since - self.step]:
                del self._past[t]
            return dict(self._past)

    def _note(self, cur) -> None:
        r, p = cur.plan, cur.problem
        t0 = r.horizon.start
        old = self._past.get(t0)
        if old is not None and old.version > cur.version:
            return
        cap = floor = None
        if p is not None and p.dr_import_max_kw is not None:
            cap = float(p.dr_import_max_kw[0])
        if p is not None and p.dr_import_min_kw is not None:
            floor = float(p.dr_import_min_kw[0])
        self._past[t0] = _PastPlan(
            cur.version,
            float(r.p_net_kw[0]),
            cap if cap is not None else math.inf,
            floor if floor is not None else -math.inf,
        )

    def _backfill(self, since: datetime, after_version: int) -> None:
        pl = tables.plans
        q = (
            select(pl.c.version, pl.c.horizon_start, pl.c.body["p_net_kw"][0].as_float())
            .where(pl.c.horizon_start >= since, pl.c.version > after_version)
            .order_by(pl.c.version)
        )
        with self.rt.engine.connect() as conn:
            for version, start, p in conn.execute(q):
                if p is not None:
                    self._past[start] = _PastPlan(int(version), float(p))

    # -- Now --------------------------------------------------------------------------------
    def now(self) -> dict[str, Any]:
        self.start_grid()  # a page is looking: keep its documents fresh
        self._asked["now"] = time.monotonic()
        return self._now.get(self._stamp(), self._now_doc, wait="now" not in self._warm_docs)

    def _now_doc(self) -> dict[str, Any]:
        rt, cur = self.rt, self.rt.current
        now = rt.clock.now()
        k_now = _floor(now, self.step)
        n_past = round(timedelta(hours=PAST_INTERVALS_H) / self.step)
        past_h = Horizon(k_now - n_past * self.step, self.step, n_past + 1)
        names_p = [PARK_METER, *self.pv_names, *self.ev_names]
        bats = [b for b, _ in self.batteries]
        with rt.engine.connect() as conn:
            p = asset_means(conn, names_p, past_h)
            e = asset_means(conn, bats, past_h, "e_kwh")
        net = p[0]
        pv = self._group(p[1 : 1 + len(self.pv_names)], negate=True)
        ev = self._group(p[1 + len(self.pv_names) :])
        cap_kwh = np.array([c for _, c in self.batteries], float)
        soc = None
        if len(bats):
            seen = np.isfinite(e).any(axis=1)  # batteries that report their energy
            e_ff = _ffill(e[seen])
            full = np.all(np.isfinite(e_ff), axis=0) & seen.any()
            soc = np.where(full, np.nansum(e_ff, axis=0) / max(cap_kwh[seen].sum(), 1e-9), np.nan)
        plans = self._past_plans(past_h.start)
        past_plan = [plans.get(t) for t in past_h.times()]
        readings = rt.readings()
        doc: dict[str, Any] = {
            "at": now.isoformat(),
            "interval_start": k_now.isoformat(),
            "step_minutes": self.step.total_seconds() / 60,
            "connection": {
                "import_max_kw": self.site.connection.import_max_kw,
                "export_max_kw": self.site.connection.export_max_kw,
            },
            "past": {
                "times": _times(past_h),
                "p_net_kw": series(net),
                "pv_kw": series(pv),
                "ev_kw": series(ev),
                "soc_frac": series(soc, 4),
                "plan_p_net_kw": series([x.p_net_kw if x else np.nan for x in past_plan]),
                "plan_dr_import_max_kw": series(
                    [x.dr_import_max_kw if x else np.nan for x in past_plan]
                ),
                "plan_dr_import_min_kw": series(
                    [x.dr_import_min_kw if x else np.nan for x in past_plan]
                ),
            },
            "batteries": self._batteries(readings, cur),
            "latest": self._latest(readings),
        }
        doc.update(self._ahead(cur))
        return doc

    def _group(self, rows: np.ndarray, negate: bool = False) -> np.ndarray | None:
        """The sum over assets per interval (readings held from the last one); NaN where
        an asset has never reported. PV is shown as generation (positive)."""
        if rows.shape[0] == 0:
            return None
        total = np.sum(_ffill(rows), axis=0)
        return -total if negate else total

    def _latest(self, readings) -> dict[str, Any]:
        def one(name: str) -> dict[str, Any] | None:
            r = readings.get(name)
            return None if r is None else {"ts": r.ts.isoformat(), "p_kw": r.p_kw}

        def total(names: list[str], sign: float) -> float | None:
            got = [
                readings[n].p_kw for n in names if n in readings and readings[n].p_kw is not None
            ]
            return sign * float(sum(got)) if got else None

        return {
            "park": one(PARK_METER),
            "pv_kw": total(self.pv_names, -1.0),
            "ev_kw": total(self.ev_names, 1.0),
        }

    def _batteries(self, readings, cur) -> list[dict[str, Any]]:
        stale = self.rt.stale_assets(self.rt.clock.now())
        out = []
        for name, cap in self.batteries:
            r = readings.get(name)
            sched = cur.plan.assets.get(name) if cur else None
            plan_soc = None  # at the end of the interval running now (e_kwh[0] is its start)
            if sched is not None and sched.e_kwh is not None and len(sched.e_kwh) > 1:
                plan_soc = round(float(sched.e_kwh[1]) / cap, 4)
            out.append(
                {
                    "name": name,
                    "e_max_kwh": cap,
                    "soc_frac": (
                        round(r.e_kwh / cap, 4) if r is not None and r.e_kwh is not None else None
                    ),
                    "ts": r.ts.isoformat() if r is not None else None,
                    "p_kw": r.p_kw if r is not None else None,
                    "plan_soc_frac": plan_soc,
                    "plan_p_kw": round(float(sched.p_kw[0]), 3) if sched is not None else None,
                    "stale": name in stale,
                    "held": (sched.held or None) if sched is not None else None,
                }
            )
        return out

    def _ahead(self, cur) -> dict[str, Any]:
        stale = sorted(self.rt.stale_assets(self.rt.clock.now()))
        if cur is None:
            return {"plan": None, "stale_assets": stale, "held": {}}
        r, p = cur.plan, cur.problem
        kinds: dict[str, list] = {"pv": [], "ev_charger": []}
        soc_e, soc_cap = [], 0.0
        caps = dict(self.batteries)
        for name, s in r.assets.items():
            if s.kind in kinds:
                kinds[s.kind].append(np.asarray(s.p_kw, float))
            if name in caps and s.e_kwh is not None:
                soc_e.append(np.asarray(s.e_kwh, float)[: r.horizon.n])
                soc_cap += caps[name]

        def total(xs: list, sign: float) -> list[float | None] | None:
            return series(sign * np.sum(xs, axis=0)) if xs else None

        def limit(a) -> list[float | None] | None:
            return series(a) if a is not None else None

        plan = {
            "cycle_id": cur.cycle_id,
            "plan_version": cur.version,
            "status": r.status,
            "fallback": cur.fallback,
            "times": _times(r.horizon),
            "plan_p_net_kw": series(r.p_net_kw),
            "plan_pv_kw": total(kinds["pv"], -1.0),
            "plan_ev_kw": total(kinds["ev_charger"], 1.0),
            "plan_soc_frac": series(np.sum(soc_e, axis=0) / soc_cap, 4) if soc_e else None,
            "plan_import_max_kw": limit(p.import_max_kw if p is not None else None),
            "plan_dr_import_max_kw": limit(p.dr_import_max_kw if p is not None else None),
            "plan_dr_import_min_kw": limit(p.dr_import_min_kw if p is not None else None),
            "month_peak_import_kw": (
                round(float(p.month_peak_import_kw), 3) if p is not None else None
            ),
        }
        held = {n: s.held for n, s in r.assets.items() if s.held}
        return {"plan": plan, "stale_assets": stale, "held": held}

    # -- Network ----------------------------------------------------------------------------
    def start_grid(self) -> None:
        """Build the network model in a thread (about 1.5 s for the demo park), once; then
        keep the documents fresh (:meth:`_warm`) while someone reads them."""
        self._asked_s = time.monotonic()
        with self._grid_lock:
            if self._grid_started:
                if not self._warmer_on and self._grid_ready.is_set():
                    self._warmer_on = True
                    threading.Thread(target=self._warm, name="ui-warm", daemon=True).start()
                return
            self._grid_started = self._warmer_on = True
        threading.Thread(target=self._build_grid, name="ui-grid", daemon=True).start()

    def _build_grid(self) -> None:
        from vpp.grid.network import GridModel

        try:
            self._grid = GridModel.from_site(self.site)
        except Exception as exc:  # a network pandapower cannot model: the view says so
            self._grid_error = f"{type(exc).__name__}: {exc}"
        finally:
            self._grid_ready.set()
        self._warm()

    def _warm(self) -> None:
        """Keep the documents fresh: compute each one a page has asked for within
        ``WARM_IDLE_S`` when the plan or the newest park-meter reading changes (looked at
        every ``WARM_EVERY_S``), so that a request never waits for a computation. A page
        on the Now view costs the Now document only. Stops with the runtime, or when no
        page has asked for anything for ``WARM_IDLE_S`` (the next request starts it again,
        and computes its document itself meanwhile)."""
        from api.ui import month, network_view

        docs = {
            "now": (self._now, self._now_doc),
            "network": (self._net, lambda: network_view.document(self)),
            "month": (self._mtd, lambda: month.document(self)),
        }
        done: dict[str, Any] = {}
        try:
            while not self.rt.closing and time.monotonic() - self._asked_s < WARM_IDLE_S:
                stamp = self._stamp()
                for name, (cache, compute) in docs.items():
                    asked = self._asked.get(name)
                    if asked is None or time.monotonic() - asked > WARM_IDLE_S:
                        self._warm_docs.discard(name)
                        done.pop(name, None)
                        continue
                    if done.get(name) == stamp:
                        continue
                    try:
                        self.body(name, cache.get(stamp, compute))
                        self._warm_docs.add(name)
                        done[name] = stamp
                    except Exception:  # the next look tries again; requests compute meanwhile
                        log.exception("the page's %s document was not computed", name)
                        self._warm_docs.discard(name)
                time.sleep(WARM_EVERY_S)
        finally:
            with self._grid_lock:
                self._warm_docs.clear()
                self._warmer_on = False

    def network(self, wait_s: float = 20.0) -> dict[str, Any] | None:
        """None while the model is being built (longer than ``wait_s``)."""
        self.start_grid()
        if not self._grid_ready.wait(wait_s):
            return None
        self._asked["network"] = time.monotonic()
        wait = "network" not in self._warm_docs
        return self._net.get(self._stamp(), self._network_doc, wait=wait)

    def _network_doc(self) -> dict[str, Any]:
        from api.ui import network_view

        return network_view.document(self)

    # -- Month to date ----------------------------------------------------------------------
    def month_to_date(self) -> dict[str, Any]:
        from api.ui import month

        self.start_grid()
        self._asked["month"] = time.monotonic()
        wait = "month" not in self._warm_docs
        return self._mtd.get(self._stamp(), lambda: month.document(self), wait=wait)

    def body(self, name: str, doc: Any) -> bytes:
        """The document's JSON (times in the park's zone), encoded once per document."""
        hit = self._bodies.get(name)
        if hit is None or hit[0] is not doc:
            text = json.dumps(localise(doc, self.zone), separators=(",", ":"), allow_nan=False)
            hit = self._bodies[name] = (doc, text.encode())
        return hit[1]

    # -- helpers shared by the views --------------------------------------------------------
    def asset_rows(self) -> list[SimpleNamespace]:
        """Every top-level asset as (name, kind, bus), in ``Assets.names()`` order."""
        return [
            SimpleNamespace(name=x.name, kind=kind, bus=x.bus)
            for kind, group in self.site.assets.by_kind()
            for x in group
        ]

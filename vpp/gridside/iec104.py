"""The park as a controlled station of a dispatch centre: an IEC 60870-5-104 outstation
(the ``c104`` package, a binding of lib60870).

Monitoring direction: the measured values below, sent cyclically (``cyclic_s``, cause
*periodic*), on change beyond ``deadband_kw`` (cause *spontaneous*) and on a general
interrogation. Control direction: a set-point of the park's total import (``C_SE_NC_1``,
kW) and its release (``C_SC_NA_1``).

A set-point is judged against the offer (the flexibility envelope of the plan in force,
:func:`vpp.gridside.offers.setpoint_judgement`) over its hold, ``hold_minutes`` from the
current interval's start: outside it the command is refused with a negative activation
confirmation (ACT_CON, P/N = 1) and nothing changes; inside it is confirmed and becomes a
pre-agreed DR event through the service's one DR path (:class:`vpp.gridside.intake.DrIntake`)
- checked, stored, re-solved at once, planned in the next cycles and settled like a REST one.
A new set-point replaces the one in force (that event is cancelled); a release cancels it.

How a set-point of ``P`` kW becomes an event (the plan's baseline ``B`` = mean over the hold
of the baseline its DR limits are set on): ``P < B - 1``: peak shaving, ``cleared_kw = B - P``
(tracked to the band's middle: the import aimed at ``P``); ``P > B + 1``: valley filling,
``cleared_kw = P - B``; otherwise a cap-only peak-shaving event at ``import_cap_kw = P``.

Information object addresses (common address ``common_address``, default 1; all values
short floats, IEEE 754):

====  ==========  =====================================================================
IOA   type        value
====  ==========  =====================================================================
1001  M_ME_NC_1   park active power, kW, + import (park meter; quality *invalid* when none)
1002  M_ME_NC_1   park reactive power, kvar (estimated from the plan as the AC check
                  models it: quality *substituted*)
1003  M_ME_NC_1   import limit in force now, kW (connection, or a DR cap if lower)
1004  M_ME_NC_1   available flexibility up (more import than planned), kW
1005  M_ME_NC_1   available flexibility down (less import than planned), kW
1006  M_ME_NC_1   aggregate battery state of charge, percent
1007  M_ME_NC_1   set-point in force, kW (read-back; *invalid* when none)
1008  M_ME_NC_1   tracking error: measured import - set-point, kW (*invalid* when none)
1009  M_ME_NC_1   lowest import the park can hold this interval, kW
1010  M_ME_NC_1   highest import the park can hold this interval, kW
1011  M_ME_NC_1   planned import this interval, kW
2001  C_SE_NC_1   set-point: total park import, kW
2002  C_SC_NA_1   release the set-point in force (ON)
====  ==========  =====================================================================
"""

# No "from __future__ import annotations": c104 checks the callbacks' annotations as objects.

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import c104
import numpy as np

from vpp.gridside.intake import DrIntake, ServicePort
from vpp.gridside.offers import Offer, battery_soc_frac, offer, setpoint_judgement
from vpp.park.model import PARK_METER
from vpp.plan.prepare import horizon_for

log = logging.getLogger(__name__)

IOA = {
    "p_kw": 1001,
    "q_kvar": 1002,
    "import_limit_kw": 1003,
    "flex_up_kw": 1004,
    "flex_down_kw": 1005,
    "battery_soc_pct": 1006,
    "setpoint_kw": 1007,
    "tracking_error_kw": 1008,
    "p_import_min_kw": 1009,
    "p_import_max_kw": 1010,
    "plan_p_kw": 1011,
}
IOA_SETPOINT = 2001
IOA_RELEASE = 2002


@dataclass(frozen=True)
class Iec104Config:
    """The outstation's settings (``iec104:`` in a grid-side file).

    host, port : where it listens (2404 is the standard port; 0 = a free port).
    common_address : the station's ASDU address (1-65534).
    cyclic_s : the period of the cyclic (periodic) reports (s).
    refresh_s : how often the values are recomputed from the plan and the meter (s).
    deadband_kw : a value that moved by more than this since it was last sent is sent at
        once, spontaneously (kW, kvar; 1 percent for the SOC).
    hold_minutes : how long a set-point holds from the current interval's start (min).
    power_factor : the inductive loads' power factor the reactive estimate uses.
    tick_rate_ms : the protocol thread's tick (lib60870: at least 50 ms).
    """

    host: str = "127.0.0.1"
    port: int = 2404
    common_address: int = 1
    cyclic_s: float = 10.0
    refresh_s: float = 1.0
    deadband_kw: float = 5.0
    hold_minutes: float = 60.0
    power_factor: float = 0.95
    tick_rate_ms: int = 100
    max_connections: int = 2


@dataclass
class SetpointState:
    """The set-point in force: value (kW), its DR event, since when, until when."""

    p_kw: float
    event_id: str
    start: datetime
    end: datetime


@dataclass
class Iec104Outstation:
    """The IEC 104 outstation of one park (see the module doc for its points)."""

    port: ServicePort
    config: Iec104Config = field(default_factory=Iec104Config)
    actor: str = "iec104"
    setpoint: SetpointState | None = None
    refusals: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.intake = DrIntake(self.port, f"{self.actor}:{self.config.common_address}")
        self._sent: dict[str, tuple[float, bool]] = {}  # last sent: value, valid
        self._lock = threading.RLock()  # the set-point in force (never held around c104)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._server: Any = None
        self._points: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the station and start the refresh loop."""
        c = self.config
        srv = c104.Server(
            ip=c.host,
            port=c.port,
            tick_rate_ms=max(c.tick_rate_ms, 50),
            max_connections=c.max_connections,
        )
        st = srv.add_station(common_address=c.common_address)
        cyclic_ms = round(c.cyclic_s * 1000)
        for name, ioa in IOA.items():
            self._points[name] = st.add_point(
                io_address=ioa, type=c104.Type.M_ME_NC_1, report_ms=cyclic_ms
            )
        sp = st.add_point(
            io_address=IOA_SETPOINT,
            type=c104.Type.C_SE_NC_1,
            related_io_address=IOA["setpoint_kw"],
            related_io_autoreturn=False,
        )
        sp.on_receive(callable=self._on_setpoint)
        rel = st.add_point(io_address=IOA_RELEASE, type=c104.Type.C_SC_NA_1)
        rel.on_receive(callable=self._on_release)
        self._server = srv
        self.refresh(transmit=False)
        srv.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="iec104-refresh", daemon=True)
        self._thread.start()
        log.info("IEC 104 outstation on %s:%d, common address %d", c.host, c.port, c.common_address)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._server is not None:
            self._server.stop()
        self._server = None

    @property
    def open_connections(self) -> int:
        return 0 if self._server is None else int(self._server.open_connection_count)

    # ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        """Refresh every ``refresh_s``, and at once when a command changed something. The
        only thread that writes the monitoring points: a command's callback runs on c104's
        own thread, under its locks, and never calls back into c104 (a lock-order inversion
        between that thread and this one deadlocked the station)."""
        while not self._stop.is_set():
            self._wake.wait(self.config.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.refresh()
            except Exception:  # a bad moment of the plan must not end the station
                log.exception("IEC 104 refresh failed")

    def values(self) -> dict[str, tuple[float, bool, bool]]:
        """Per point name: (value, valid, substituted), from the plan in force and the
        park meter."""
        cur, now = self.port.current, self.port.clock.now()
        out: dict[str, tuple[float, bool, bool]] = {k: (0.0, False, False) for k in IOA}
        meter = self.port.readings().get(PARK_METER)
        p_meas = None if meter is None or meter.p_kw is None else float(meter.p_kw)
        if p_meas is not None:
            out["p_kw"] = (p_meas, True, False)
        if cur is not None and cur.problem is not None:
            off = offer(cur.problem, cur.plan, cur.version)
            k = off.index(now)
            k = 0 if k is None else k
            out["plan_p_kw"] = (float(off.plan_p_net_kw[k]), True, False)
            out["p_import_min_kw"] = (float(off.p_import_min_kw[k]), True, False)
            out["p_import_max_kw"] = (float(off.p_import_max_kw[k]), True, False)
            out["flex_up_kw"] = (float(off.up_kw[k]), True, False)
            out["flex_down_kw"] = (float(off.down_kw[k]), True, False)
            out["import_limit_kw"] = (_import_limit(self.port.site, cur.problem, k), True, False)
            out["q_kvar"] = (self._q_kvar(cur.plan, k), True, True)
            soc = battery_soc_frac(cur.problem)
            if soc is not None:
                out["battery_soc_pct"] = (100.0 * soc, True, False)
        sp = self._in_force(now)
        if sp is not None:
            out["setpoint_kw"] = (sp.p_kw, True, False)
            if p_meas is not None:
                out["tracking_error_kw"] = (p_meas - sp.p_kw, True, False)
        return out

    def refresh(self, transmit: bool = True) -> None:
        """Recompute every value; send those that moved beyond the deadband."""
        # No lock of ours is held while c104 is called (see _loop).
        for name, (v, valid, subst) in self.values().items():
            pt = self._points.get(name)
            if pt is None:
                continue
            quality = c104.Quality()
            if not valid:
                quality = c104.Quality.Invalid
            elif subst:
                quality = c104.Quality.Substituted
            pt.info = c104.ShortInfo(actual=float(v), quality=quality)
            band = 1.0 if name == "battery_soc_pct" else self.config.deadband_kw
            last = self._sent.get(name)
            moved = last is None or last[1] != valid or (valid and abs(v - last[0]) > band)
            if moved:
                self._sent[name] = (v, valid)
            srv = self._server
            if transmit and moved and srv is not None and srv.has_open_connections:
                pt.transmit(cause=c104.Cot.SPONTANEOUS)

    def _q_kvar(self, plan, k: int) -> float:
        from vpp.grid.network import bus_q_kvar

        q = bus_q_kvar(plan.assets, self.port.site.bus_names(), self.config.power_factor)
        return float(sum(float(np.asarray(v)[k]) for v in q.values()))

    def _in_force(self, now: datetime) -> SetpointState | None:
        sp = self.setpoint
        if sp is None or now >= sp.end:
            return None
        return sp

    # ----------------------------------------------------------------------------------
    def _on_setpoint(
        self,
        point: c104.Point,
        previous_info: c104.Information,
        message: c104.IncomingMessage,
    ) -> c104.ResponseState:
        try:
            ok, _ = self.apply_setpoint(float(point.value))
        except Exception as exc:  # a refusal the centre sees, never a dead station
            log.exception("IEC 104 set-point failed")
            ok = False
            self.refusals.append(f"{point.value}: {type(exc).__name__}: {exc}")
        if not ok:
            point.info = previous_info  # a refused command changes nothing
        return c104.ResponseState.SUCCESS if ok else c104.ResponseState.FAILURE

    def _on_release(
        self,
        point: c104.Point,
        previous_info: c104.Information,
        message: c104.IncomingMessage,
    ) -> c104.ResponseState:
        if not bool(point.value):
            return c104.ResponseState.FAILURE
        self.release("released by the dispatch centre")
        return c104.ResponseState.SUCCESS

    def apply_setpoint(self, p_set_kw: float) -> tuple[bool, str]:
        """Judge a set-point of the park's total import (kW) and, when the park can hold it,
        make it the event in force. Returns (accepted, why)."""
        now = self.port.clock.now()
        cur = self.port.current
        if not math.isfinite(p_set_kw):
            return self._refuse(p_set_kw, "not a finite number")
        if cur is None or cur.problem is None:
            return self._refuse(p_set_kw, "no plan yet: the park's flexibility is unknown")
        start = horizon_for(self.port.site, now).start
        end = start + timedelta(minutes=self.config.hold_minutes)
        off = offer(cur.problem, cur.plan, cur.version)
        j = setpoint_judgement(p_set_kw, off, start, end)
        if not j.ok:
            return self._refuse(p_set_kw, j.reason)
        fields = self._event_fields(p_set_kw, off, start, end, now)
        with self._lock:
            previous = self.setpoint
            if previous is not None and previous.end > now:
                self.intake.cancel(previous.event_id, f"replaced by a set-point of {p_set_kw:g} kW")
            rec = self.intake.submit(fields)
            if not rec.in_force:
                self.setpoint = None
                why = "; ".join(rec.problems) or rec.note
                return self._refuse(p_set_kw, f"the DR path did not take it: {why}")
            self.setpoint = SetpointState(p_set_kw, rec.event_id, start, end)
            self.last_ticket = rec.ticket
        self.accepted.append(f"{p_set_kw:g} kW: {j.reason}")
        log.info("IEC 104 set-point %.1f kW accepted as %s (%s)", p_set_kw, rec.event_id, j.reason)
        self._wake.set()
        return True, j.reason

    def release(self, note: str) -> None:
        with self._lock:
            sp, self.setpoint = self.setpoint, None
            if sp is not None:
                self.intake.cancel(sp.event_id, note)
        self._wake.set()

    def _refuse(self, p_set_kw: float, reason: str) -> tuple[bool, str]:
        self.refusals.append(f"{p_set_kw:g} kW: {reason}")
        log.warning("IEC 104 set-point %s kW refused: %s", p_set_kw, reason)
        return False, reason

    def _event_fields(
        self, p_set_kw: float, off: Offer, start: datetime, end: datetime, now: datetime
    ) -> dict[str, Any]:
        self._seq += 1
        base = float(off.baseline_kw[off.mask(start, end)].mean())
        stamp, ca = start.strftime("%Y%m%dT%H%M"), self.config.common_address
        fields: dict[str, Any] = {
            "event_id": f"iec104-{ca}-{stamp}-{self._seq}-{int(time.time())}",
            "windows": [{"start": start.isoformat(), "end": end.isoformat()}],
            "issuer": f"IEC 104 dispatch centre (CA {self.config.common_address})",
            "contract_type": "pre_agreed",
            "call_class": "minute_level",
            "announce_time": now.isoformat(),
            "min_duration_minutes": self.config.hold_minutes,
            # The positive ACT_CON is a promise: the plan follows it, whatever it costs.
            "binding": True,
        }
        if p_set_kw < base - 1.0:
            fields |= {"direction": "peak_shaving", "requested_kw": base - p_set_kw}
            fields["cleared_kw"] = base - p_set_kw
        elif p_set_kw > base + 1.0:
            fields |= {"direction": "valley_filling", "requested_kw": p_set_kw - base}
            fields["cleared_kw"] = p_set_kw - base
        else:
            fields |= {"direction": "peak_shaving", "requested_kw": 1.0}
            fields["import_cap_kw"] = p_set_kw
        return fields


def _import_limit(site, problem, k: int) -> float:
    """The import limit in force in interval ``k``: the connection's (its contract and the
    transformer), or a DR cap below it."""
    conn = site.connection
    lim = float(min(conn.import_max_kw, conn.transformer_p_max_kw))
    dr = problem.dr_import_max_kw
    if dr is not None and k < len(dr) and math.isfinite(float(dr[k])):
        lim = min(lim, float(dr[k]))
    return lim

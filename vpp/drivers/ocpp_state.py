"""What the OCPP central system knows of its charge points, and what it makes of it: EV
sessions, meter readings, and whether a station follows its charging profile. Plain data
and pure functions; :mod:`vpp.drivers.ocpp_cs` fills it from the protocol.

Sessions. A transaction (1.6 ``StartTransaction``; 2.0.1 ``TransactionEvent`` Started) is
an EV session on the charger mapped to that connector/EVSE: arrival = the transaction's
start, energy delivered = the energy register minus its value at the start, departure and
energy needed from the car when it says (2.0.1 ``NotifyEVChargingNeeds``), else the
configured defaults (``default_dwell_h``, ``default_e_needed_kwh``), each stated as an
:class:`vpp.park.state.Assumption`. A transaction the central system never saw start (the
service restarted while it ran) begins where it is first seen, also stated. The session
ends at ``StopTransaction`` / ``TransactionEvent`` Ended, or when the connector reports
``Available`` (the car left while the station was offline).

Compliance. Chargers are known to accept a profile and not follow it. Each interval the
mean metered power of a connector (its samples since the limit it accepted took effect)
is compared with that limit; over it by more than ``tolerance_frac`` of it and
``tolerance_kw`` for ``intervals`` intervals in a row, the connector's station is
non-compliant: its limit is not trusted and its session is planned at its metered draw
(:func:`planned_session`). As many intervals in a row within the limit make it compliant
again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from vpp.park.model import EvSession, OcppServer
from vpp.park.state import Assumption

POWER = "Power.Active.Import"
ENERGY = "Energy.Active.Import.Register"


@dataclass
class Tx:
    tx_id: str
    connector: int
    start: datetime
    meter_start_wh: float | None = None
    e_wh: float | None = None  # latest energy register reading
    id_tag: str = ""
    departure: datetime | None = None  # from the car (2.0.1 NotifyEVChargingNeeds)
    e_needed_kwh: float | None = None
    start_seen: bool = True  # False: begun before the central system saw it

    @property
    def e_delivered_kwh(self) -> float:
        if self.meter_start_wh is None or self.e_wh is None:
            return 0.0
        return max(self.e_wh - self.meter_start_wh, 0.0) / 1000.0


@dataclass
class Compliance:
    over_streak: int = 0
    under_streak: int = 0
    noncompliant: bool = False
    last_mean_kw: float | None = None
    last_limit_kw: float | None = None
    since: datetime | None = None  # when it was flagged


@dataclass
class Connector:
    status: str = "Unknown"
    tx: Tx | None = None
    p_kw: float | None = None  # latest metered power
    p_ts: datetime | None = None
    samples: list[float] = field(default_factory=list)  # kW since the last evaluation
    limit_kw: float | None = None  # the limit the station accepted last
    limit_unit: str = ""
    limit_value: float | None = None
    limit_for: datetime | None = None  # the cycle that computed it
    compliance: Compliance = field(default_factory=Compliance)


@dataclass
class Station:
    sid: str
    version: str = ""  # "1.6" | "2.0.1"
    connected: bool = False
    last_seen: float = 0.0  # monotonic seconds
    boots: int = 0
    connects: int = 0
    vendor: str = ""
    model: str = ""
    units: tuple[str, ...] = ("A",)  # what the station takes in profiles (A is universal)
    connectors: dict[int, Connector] = field(default_factory=dict)
    max_kw: float | None = None  # the station maximum it accepted last (W stations)
    max_sent: tuple[float, str] | None = None  # (limit, unit) accepted since it connected
    last_error: str = ""

    def connector(self, cid: int) -> Connector:
        return self.connectors.setdefault(cid, Connector())

    @property
    def unit(self) -> str:
        return "W" if "W" in self.units else "A"

    def online(self, now_mono: float, offline_after_s: float) -> bool:
        return self.connected and now_mono - self.last_seen <= offline_after_s


def sampled_values(meter_value: list[dict]) -> list[tuple[str | None, str, float, str]]:
    """(timestamp, measurand, value, unit) of every sampled value of a MeterValues payload
    (1.6: ``value`` a string, ``unit``; 2.0.1: a number, ``unit_of_measure``)."""
    out = []
    for mv in meter_value or []:
        ts = mv.get("timestamp")
        for sv in mv.get("sampled_value", []) or []:
            try:
                v = float(sv.get("value"))
            except (TypeError, ValueError):
                continue
            if not math.isfinite(v):
                continue
            measurand = sv.get("measurand") or ENERGY
            if sv.get("phase"):  # per-phase values: the totals are what is compared
                continue
            uom = sv.get("unit_of_measure") or {}
            unit = sv.get("unit") or uom.get("unit") or ("Wh" if measurand == ENERGY else "W")
            mult = uom.get("multiplier", 0) or 0
            out.append((ts, measurand, v * 10.0**mult, unit))
    return out


def to_kw(value: float, unit: str) -> float:
    return value if unit.lower() in ("kw",) else value / 1000.0


def to_wh(value: float, unit: str) -> float:
    return value * 1000.0 if unit.lower() == "kwh" else value


def evaluate(c: Connector, cfg: OcppServer, at: datetime) -> bool | None:
    """One interval's verdict for a connector: True over its limit, False within, None no
    verdict (no limit or no sample since it took effect). Updates its compliance streaks."""
    samples, c.samples = c.samples, []
    if c.limit_kw is None or not samples:
        return None
    mean = sum(samples) / len(samples)
    comp = c.compliance
    comp.last_mean_kw, comp.last_limit_kw = mean, c.limit_kw
    over = mean > c.limit_kw * (1 + cfg.compliance_tolerance_frac) + cfg.compliance_tolerance_kw
    if over:
        comp.over_streak, comp.under_streak = comp.over_streak + 1, 0
        if comp.over_streak >= cfg.compliance_intervals and not comp.noncompliant:
            comp.noncompliant, comp.since = True, at
    else:
        comp.under_streak, comp.over_streak = comp.under_streak + 1, 0
        if comp.under_streak >= cfg.compliance_intervals:
            comp.noncompliant, comp.since = False, None
    return over


def session_of(
    st: Station, c: Connector, charger: str, at: datetime, step: timedelta, cfg: OcppServer
) -> tuple[EvSession, list[Assumption]]:
    """The EV session of a connector's running transaction, with what was assumed."""
    tx = c.tx
    assert tx is not None
    sid = f"ocpp:{st.sid}:{tx.tx_id}"
    assumed: list[Assumption] = []
    if not tx.start_seen:
        assumed.append(
            Assumption(sid, "arrival", 0.0, "transaction begun before the central system saw it")
        )
    departure = tx.departure
    if departure is None:
        departure = tx.start + timedelta(hours=cfg.default_dwell_h)
        basis = f"no departure from the car: {cfg.default_dwell_h:g} h after arrival"
        if departure <= at:  # still plugged in past the assumed dwell: one more interval
            departure = at + step
            basis = "no departure from the car; still plugged in past the assumed dwell"
        assumed.append(
            Assumption(sid, "dwell_h", (departure - tx.start) / timedelta(hours=1), basis)
        )
    e_needed = tx.e_needed_kwh
    delivered = tx.e_delivered_kwh
    if e_needed is None:  # the session's whole need (a car past it is taken as served)
        e_needed = max(cfg.default_e_needed_kwh, delivered)
        assumed.append(
            Assumption(sid, "e_needed_kwh", e_needed, "no energy request from the car (default)")
        )
    s = EvSession(
        session_id=sid,
        charger=charger,
        arrival=min(tx.start, at),
        departure=max(departure, at + step),
        e_needed_kwh=max(e_needed, delivered),
        e_delivered_kwh=delivered,
    )
    return s, assumed


def planned_session(
    s: EvSession, draw_kw: float, p_max_kw: float, at: datetime, step: timedelta, station: str
) -> tuple[EvSession, Assumption]:
    """A session on a non-compliant station planned at its metered draw: the plan must
    deliver ``draw_kw`` every interval (an intermediate target at the departure or the
    energy it needs, whichever comes first), not what its profile would allow."""
    draw = min(max(draw_kw, 0.0), p_max_kw)
    steps = max(1, math.floor((s.departure - at) / step))
    dt_h = step / timedelta(hours=1)
    e_target = s.e_delivered_kwh + draw * dt_h * steps
    planned = replace(
        s,
        p_max_kw=draw if draw > 0 else None,
        e_needed_kwh=max(s.e_needed_kwh, e_target),
        target_e_kwh=e_target,
        target_time=at + steps * step,
    )
    why = f"station {station} exceeds its charging profile: planned at its metered draw"
    return planned, Assumption(s.session_id, "p_kw", round(draw, 3), why)

"""A driver that reports the configured initial state and records what it is sent.

Used by ``vpp dispatch`` (one interval, nothing real to talk to), by ``vpp run`` without the
simulated park, and by tests.

A cold start knows what it does not know. Cars plugged in before ``at`` and shiftable loads
whose window opened before ``at`` have a past the driver never saw: their delivered energy is
read from a charger meter when one is given (``metered_kwh``), else it is *assumed* as the
park without the VPP would have charged (:data:`ASSUMED_EV`,
:func:`vpp.accounting.counterfactual.uncontrolled_delivered_kwh`), and every assumed value is
listed in :attr:`PlantState.assumptions` with its basis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from vpp.accounting.counterfactual import uncontrolled_delivered_kwh, uncontrolled_shiftable_state
from vpp.park import sessions
from vpp.park.model import EvSession, Site
from vpp.park.state import Assumption, PlantState, ShiftableState

ASSUMED_EV = "uncontrolled charging since arrival (full power until served; no charger meter)"
ASSUMED_SHIFTABLE = "uncontrolled run since the window opened (full power; no meter)"


class StaticDriver:
    """Batteries at their configured ``soc_init_frac``; EV sessions from the configuration
    plus the seeded fleets; the month's peak so far as given.

    ``metered_kwh``: energy delivered so far by session id, as a charger's meter reads it
    (kWh into the car); sessions without a reading that arrived before ``at`` get the stated
    assumption instead.
    """

    def __init__(
        self,
        site: Site,
        seed: int = 0,
        month_peak_import_kw: float = 0.0,
        metered_kwh: Mapping[str, float] | None = None,
    ):
        self.site, self.seed, self.month_peak = site, seed, month_peak_import_kw
        self.metered_kwh = dict(metered_kwh or {})
        self.sent: list[tuple[datetime, dict[str, float]]] = []

    def read_state(self, at: datetime) -> PlantState:
        s, a = self.site, self.site.assets
        bats = list(a.batteries) + [p.battery for p in a.pedf_buildings]
        end = at + timedelta(minutes=s.dispatch.step_minutes * s.dispatch.horizon_steps)
        drawn = sessions.sessions_between(
            s.ev_fleets, a.ev_chargers, at, end, s.location.tz, self.seed, s.calendar
        )
        configured = [x for x in s.ev_sessions if x.departure > at]
        taken = {x.charger for x in configured}
        known = configured + [x for x in drawn if x.charger not in taken]
        evs, assumed = self._delivered(known, at)
        shiftable, assumed_sh = self._shiftable(at)
        return PlantState(
            at=at,
            battery_e_kwh={b.name: b.soc_init_frac * b.e_kwh for b in bats},
            ev_sessions=tuple(evs),
            shiftable=shiftable,
            month_peak_import_kw=self.month_peak,
            assumptions=tuple(assumed + assumed_sh),
        )

    def _delivered(
        self, evs: list[EvSession], at: datetime
    ) -> tuple[list[EvSession], list[Assumption]]:
        """Sessions with their energy delivered before ``at``: metered, given, or assumed."""
        chargers = {c.name: c for c in self.site.assets.ev_chargers}
        out, assumed = [], []
        for x in evs:
            if x.session_id in self.metered_kwh:
                x = replace(x, e_delivered_kwh=float(self.metered_kwh[x.session_id]))
            elif x.arrival < at and x.e_delivered_kwh == 0.0 and x.charger in chargers:
                e = round(uncontrolled_delivered_kwh(x, chargers[x.charger], at), 3)
                x = replace(x, e_delivered_kwh=e)
                assumed.append(Assumption(x.session_id, "e_delivered_kwh", e, ASSUMED_EV))
            out.append(x)
        return out, assumed

    def _shiftable(self, at: datetime) -> tuple[dict[str, ShiftableState], list[Assumption]]:
        """Shiftable loads whose window is open at ``at``, as if they had run uncontrolled."""
        s = self.site
        out, assumed = {}, []
        for spec in s.assets.shiftable_loads:
            st = uncontrolled_shiftable_state(
                spec, at, s.location.tz, s.dispatch.step_minutes / 60.0
            )
            if st is not None and st.e_done_kwh > 0.0:
                out[spec.name] = st
                assumed.append(
                    Assumption(spec.name, "e_done_kwh", st.e_done_kwh, ASSUMED_SHIFTABLE)
                )
        return out, assumed

    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None:
        self.sent.append((at, dict(setpoints_kw)))

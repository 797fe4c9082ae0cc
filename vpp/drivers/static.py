"""A driver that reports the configured initial state and records what it is sent.

Used by ``vpp dispatch`` (one interval, nothing real to talk to) and by tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vpp.park import sessions
from vpp.park.model import Site
from vpp.park.state import PlantState


class StaticDriver:
    """Batteries at their configured ``soc_init_frac``; EV sessions from the configuration
    plus the seeded fleets; the month's peak so far as given."""

    def __init__(self, site: Site, seed: int = 0, month_peak_import_kw: float = 0.0):
        self.site, self.seed, self.month_peak = site, seed, month_peak_import_kw
        self.sent: list[tuple[datetime, dict[str, float]]] = []

    def read_state(self, at: datetime) -> PlantState:
        s, a = self.site, self.site.assets
        bats = list(a.batteries) + [p.battery for p in a.pedf_buildings]
        end = at + timedelta(minutes=s.dispatch.step_minutes * s.dispatch.horizon_steps)
        drawn = sessions.sessions_between(
            s.ev_fleets, a.ev_chargers, at, end, s.location.tz, self.seed
        )
        configured = [x for x in s.ev_sessions if x.departure > at]
        taken = {x.charger for x in configured}
        evs = configured + [x for x in drawn if x.charger not in taken]
        return PlantState(
            at=at,
            battery_e_kwh={b.name: b.soc_init_frac * b.e_kwh for b in bats},
            ev_sessions=tuple(evs),
            month_peak_import_kw=self.month_peak,
        )

    def apply(self, at: datetime, setpoints_kw: dict[str, float]) -> None:
        self.sent.append((at, dict(setpoints_kw)))

"""Helpers for the service, API and store tests: a small park, a runtime on a manual clock,
API keys of every role."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from controllers.mpc import MpcController
from vpp.drivers.static import StaticDriver
from vpp.park.config import load_site
from vpp.park.model import Assets, Site
from vpp.park.profiles import ProfileForecaster
from vpp.runtime.clock import ManualClock
from vpp.runtime.service import Runtime
from vpp.runtime.settings import Settings
from vpp.store.db import make_engine

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 15, 8, 0, tzinfo=TZ)  # a Wednesday in summer
ROLES = ("viewer", "operator", "utility", "admin")


@functools.lru_cache(maxsize=1)
def _demo() -> Site:
    return load_site("configs/parks/demo.yaml")


def small_site(horizon_steps: int = 16) -> Site:
    """Two PV arrays, two batteries, three base loads, a curtailable load, two EV chargers;
    16 x 15 min: solves in about 0.1 s."""
    site = _demo()
    a = site.assets
    return dataclasses.replace(
        site,
        assets=Assets(
            pv_arrays=a.pv_arrays[:2],
            batteries=a.batteries[:2],
            ev_chargers=a.ev_chargers[:2],
            base_loads=a.base_loads[:3],
            curtailable_loads=a.curtailable_loads[:1],
        ),
        ev_fleets=(),
        ev_sessions=(),
        dispatch=dataclasses.replace(site.dispatch, horizon_steps=horizon_steps),
    )


def make_runtime(
    db_url: str,
    site: Site | None = None,
    driver=None,
    controller=None,
    at: datetime = T0,
    planner=None,
    forecaster=None,
    holder=None,
    start: bool = True,
    **settings,
) -> Runtime:
    """A runtime on ``db_url`` at ``at`` (a manual clock), started unless ``start`` is False.
    ``holder``: who it is to the writer lease (default: this process, so runtimes of one
    test on one database stand for restarts of one service)."""
    site = site or small_site()
    s = Settings(database_url=db_url, **settings)
    rt = Runtime(
        site=site,
        settings=s,
        engine=make_engine(s.database_url),
        driver=driver if driver is not None else StaticDriver(site),
        forecaster=forecaster or ProfileForecaster(),
        controller=controller or MpcController(),
        clock=ManualClock(at),
        planner=planner,
        holder=holder,
    )
    if start:
        rt.start()
    return rt


def make_keys(engine) -> dict[str, str]:
    import api.auth
    from api.auth import create_key

    api.auth.ITERATIONS = 1_000  # tests only: key hashing at production cost is slow
    return {role: create_key(engine, f"test-{role}", role) for role in ROLES}


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def dr_body(event_id: str = "SG-ZJ-001", cap_kw: float = 1500.0, start: datetime = T0, **kw):
    """A pre-agreed peak-shaving event with an absolute import cap for one hour from start."""
    body = {
        "event_id": event_id,
        "direction": "peak_shaving",
        "windows": [
            {
                "start": (start + timedelta(minutes=30)).isoformat(),
                "end": (start + timedelta(minutes=90)).isoformat(),
            }
        ],
        "requested_kw": 300.0,
        "import_cap_kw": cap_kw,
        "issuer": "State Grid Zhejiang",
        "contract_type": "pre_agreed",
        "call_class": "intraday",
        "price_cap_cny_per_mwh": 3000.0,
        "baseline_method": "gbt37016_5of10",
        # Illustrative: a pre-agreed contract's penalty on the energy over the cap. The plan
        # follows a called event unless not following (and paying this) costs less.
        "nonperformance_cny_per_kwh": 20.0,
    }
    body.update(kw)
    return body

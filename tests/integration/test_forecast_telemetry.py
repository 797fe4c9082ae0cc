"""Forecasts from the telemetry the service stored (``vpp run --forecast telemetry``): the
naive model on each asset's measured history once it has a week of it, the configured
profiles before that; read from the database incrementally; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from tests.service_kit import T0, make_runtime, small_site
from vpp.park.model import Horizon
from vpp.park.profiles import ProfileForecaster
from vpp.park.pv_physics import clear_sky_ac_kw
from vpp.park.state import PlantState
from vpp.plan.history_forecasters import asset_names
from vpp.plan.prepare import horizon_for
from vpp.runtime.planner import PlannerSpec, telemetry_forecaster
from vpp.store import repo

STEP = timedelta(minutes=15)
DAYS = 8


def _clear_sky(site, name: str, start, n: int) -> np.ndarray:
    pv = next(p for p in site.assets.pv_arrays if p.name == name)
    times = pd.date_range(start + STEP / 2, periods=n, freq=STEP)
    return clear_sky_ac_kw(times, site.location, pv)


def _history(site, short: str) -> tuple[list[dict], dict[str, float]]:
    """A week and a day of readings before T0: each load steady at its own level, each PV
    array at half its clear-sky power (reported as generation, < 0); ``short`` has two days."""
    pv, loads = asset_names(site)
    start = T0 - timedelta(days=DAYS)
    times = [start + k * STEP for k in range(DAYS * 96)]
    level = {name: 100.0 + 10 * i for i, name in enumerate(loads)}
    rows = []
    for name in loads:
        first = len(times) - 2 * 96 if name == short else 0
        rows += [{"asset": name, "ts": t, "p_kw": level[name]} for t in times[first:]]
    for name in pv:
        half = 0.5 * _clear_sky(site, name, start, len(times))
        rows += [{"asset": name, "ts": t, "p_kw": -p} for t, p in zip(times, half, strict=True)]
    return rows, level


def test_forecasts_from_stored_telemetry_with_profiles_where_it_is_short(db_url):
    site = small_site()
    pv, loads = asset_names(site)
    short = loads[-1]
    rt = make_runtime(db_url, site=site)
    fc = telemetry_forecaster(PlannerSpec(site, database_url=db_url))
    horizon = horizon_for(site, T0)
    profiles = ProfileForecaster().forecast(site, horizon, PlantState(at=T0))

    fresh = fc.forecast(site, horizon, PlantState(at=T0))  # nothing stored yet
    assert fc.measured == [] and fresh.source == profiles.source
    for name in [*pv, *loads]:
        np.testing.assert_allclose(fresh.p50[name], profiles.p50[name])

    rows, level = _history(site, short)
    rt.ingest(rows, source="meter")
    got = fc.forecast(site, horizon, PlantState(at=T0))
    assert set(fc.measured) == set(pv) | set(loads) - {short}
    assert got.source.startswith("telemetry")
    for name in loads:
        expected = profiles.p50[name] if name == short else level[name]
        np.testing.assert_allclose(got.p50[name], expected, rtol=1e-9)
    for name in pv:  # the clear-sky index of the last day (0.5) on the horizon
        cs = _clear_sky(site, name, horizon.start, horizon.n)
        np.testing.assert_allclose(got.p50[name], 0.5 * cs, rtol=1e-6, atol=1e-6)
        assert name in got.p10 and name in got.p90

    # Read incrementally: the reading of the interval that just ended moves the next forecast.
    load = loads[0]
    rt.ingest([{"asset": load, "ts": T0, "p_kw": level[load] + 100.0}], source="meter")
    later = horizon_for(site, T0 + STEP)
    again = fc.forecast(site, later, PlantState(at=T0 + STEP))
    decay = 0.9 ** np.arange(1, later.n + 1)  # the last error, fading (PERSISTENCE_RHO)
    np.testing.assert_allclose(again.p50[load], level[load] + 100.0 * decay)


def test_the_service_plans_on_telemetry_forecasts(db_url):
    site = small_site()
    rt = make_runtime(db_url, site=site)
    rows, _ = _history(site, short="")
    rt.ingest(rows, source="meter")
    rt.forecaster = telemetry_forecaster(PlannerSpec(site, database_url=db_url))
    rt.planner.forecaster = rt.forecaster
    cur = rt.run_cycle()
    assert cur.fallback is None and cur.forecasts.source.startswith("telemetry")
    with rt.engine.connect() as conn:
        stored = repo.forecasts_of(conn, cur.cycle_id)
    assert {r["source"] for r in stored} == {cur.forecasts.source}


def test_the_services_profile_forecaster_gets_the_band_of_its_measured_error(db_url):
    """The configured profiles state no band, so the service's margins were zero whatever
    risk_frac. With telemetry stored, the profile forecaster's band is that of its error on
    it from the first cycle (``dispatch.margin_bands: measured``): a load that ran 20 %
    above its profile for two days gets a P90 about 20 % above its P50, bias included, and
    the P10 does not fall below the P50 (it never ran low)."""
    from vpp.runtime.planner import profile_forecaster

    site = small_site()
    pv, loads = asset_names(site)
    target = loads[0]
    rt = make_runtime(db_url, site=site)
    start = T0 - timedelta(days=2)
    n = 2 * 96
    past = ProfileForecaster().forecast(site, horizon_for(site, start), PlantState(at=start))
    hist_h = Horizon(start, STEP, n)
    prof = ProfileForecaster().forecast(site, hist_h, PlantState(at=start)).p50[target]
    rows = [
        {"asset": target, "ts": start + k * STEP, "p_kw": 1.2 * float(prof[k])} for k in range(n)
    ]
    rt.ingest(rows, source="meter")
    assert past.p10 == {} and past.p90 == {}  # the profiles state no band
    fc = profile_forecaster(PlannerSpec(site, database_url=db_url))
    horizon = horizon_for(site, T0)
    got = fc.forecast(site, horizon, PlantState(at=T0))
    assert got.source.endswith("+calibrated")
    p50, p90, p10 = got.p50[target], got.p90[target], got.p10[target]
    busy = p50 > 0.5 * p50.max()
    ratio = p90[busy] / p50[busy]
    assert np.all(ratio > 1.15) and np.all(ratio < 1.25)
    assert np.all(p10[busy] >= p50[busy] - 1e-6)
    # assets without telemetry keep the profiles' (empty) band
    assert all(name not in got.p90 for name in [*pv, *loads[1:]])

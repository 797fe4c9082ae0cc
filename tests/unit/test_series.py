"""The series rule (vpp.park.series): cleared over forecast, the latest forecast issued at or
before now, the TOU/annual fallback counted; steps finer and coarser than the horizon; the
battery's end value follows the series price (build_problem)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_sim_site import tiny_site
from vpp.park.carbon_factors import factor_label, series_ef_kg_per_kwh
from vpp.park.model import EnergySeries, Horizon
from vpp.park.series import (
    CLEARED,
    FALLBACK,
    FORECAST,
    EmissionFactorSeries,
    IntervalSeries,
    SeriesMissingError,
    merge,
    resolve,
)
from vpp.park.state import Forecasts, PlantState
from vpp.park.tariff import series_prices_cny_per_kwh
from vpp.plan.prepare import PrepareError, build_problem

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 7, 15, 8, 0, tzinfo=TZ)
Q = timedelta(minutes=15)


def _series(rows, step=15, name="s", export=None) -> IntervalSeries:
    """rows: (minutes after T0, value, issued minutes after T0 or None)."""
    return IntervalSeries(
        name,
        step,
        tuple(T0 + timedelta(minutes=m) for m, _, _ in rows),
        tuple(v for _, v, _ in rows),
        tuple(None if i is None else T0 + timedelta(minutes=i) for _, _, i in rows),
        export,
    )


def test_cleared_wins_over_any_forecast_and_the_latest_known_forecast_over_older_ones():
    s = _series(
        [
            (0, 1.0, -60),  # forecast issued an hour before
            (0, 2.0, None),  # cleared: wins whatever the forecasts say
            (0, 9.0, -10),
            (15, 1.5, -60),
            (15, 1.7, -30),  # the latest issued at or before now: this one
            (15, 8.0, 30),  # issued after now: not known yet
            (30, 8.0, 30),  # the only row of interval 2, not known yet: falls back
        ]
    )
    fallback = np.array([0.5, 0.5, 0.5, 0.5])
    v, c = resolve(s, T0, Q, 4, T0, fallback)
    np.testing.assert_allclose(v, [2.0, 1.7, 0.5, 0.5], atol=1e-12)
    assert c.source == (CLEARED, FORECAST, FALLBACK, FALLBACK)
    assert (c.cleared, c.forecast, c.fallback) == (1, 1, 2)
    # Half an hour later the late forecast is known and takes intervals 1 and 2.
    v, c = resolve(s, T0, Q, 4, T0 + timedelta(minutes=30), fallback)
    np.testing.assert_allclose(v, [2.0, 8.0, 8.0, 0.5], atol=1e-12)
    assert c.fallback == 1


def test_a_later_row_wins_a_tie_and_merge_puts_posted_rows_last():
    file = _series([(0, 1.0, None), (15, 1.0, None)], name="file")
    posted = _series([(15, 3.0, None)], name="posted")
    v, _ = resolve(merge(file, posted), T0, Q, 2, T0, np.zeros(2))
    np.testing.assert_allclose(v, [1.0, 3.0])
    assert merge(None, posted) is posted and merge(file, None) is file
    # An hourly post over the 15-minute file: split into quarters, each the hour's value.
    hourly = _series([(0, 5.0, None)], step=60, name="posted")
    both = merge(file, hourly)
    assert both.step_minutes == 15 and len(both.start) == 2 + 4
    v, _ = resolve(both, T0, Q, 4, T0, np.zeros(4))
    np.testing.assert_allclose(v, [5.0] * 4)


def test_hourly_series_on_a_15_minute_horizon_and_15_minute_series_on_an_hourly_one():
    hourly = _series([(0, 1.0, None), (60, 2.0, None)], step=60)
    v, c = resolve(hourly, T0, Q, 8, T0, np.zeros(8))
    np.testing.assert_allclose(v, [1.0] * 4 + [2.0] * 4)
    assert c.cleared == 8
    quarter = _series([(0, 1.0, None), (15, 2.0, None), (30, 3.0, None), (45, 6.0, None)])
    v, c = resolve(quarter, T0, timedelta(hours=1), 2, T0, np.array([10.0, 10.0]))
    # The first hour: the mean of its four quarters; the second: no rows, the fallback.
    np.testing.assert_allclose(v, [3.0, 10.0])
    assert c.source == (CLEARED, FALLBACK)
    partial = _series([(0, 2.0, None)])
    v, c = resolve(partial, T0, timedelta(hours=1), 1, T0, np.array([6.0]))
    np.testing.assert_allclose(v, [(2.0 + 3 * 6.0) / 4])  # one quarter covered, counted fallen
    assert c.fallback == 1


def test_times_compare_in_utc_whatever_the_offset():
    s = _series([(0, 4.0, None)])
    utc_start = T0.astimezone(UTC)
    v, c = resolve(s, utc_start, Q, 1, utc_start, np.zeros(1))
    assert v[0] == 4.0 and c.cleared == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 7),
            st.floats(0.0, 5.0),
            st.one_of(st.none(), st.integers(-120, 120)),
        ),
        max_size=25,
    ),
    st.integers(-60, 150),
)
def test_property_each_value_is_a_cleared_a_known_forecast_or_the_fallback(rows, now_min):
    s = _series([(15 * k, v, i) for k, v, i in rows])
    now = T0 + timedelta(minutes=now_min)
    v, c = resolve(s, T0, Q, 8, now, np.full(8, -1.0))
    assert c.cleared + c.forecast + c.fallback == 8
    for k in range(8):
        mine = [(val, i) for kk, val, i in rows if kk == k]
        cleared = [val for val, i in mine if i is None]
        known = [(i, val) for val, i in mine if i is not None and i <= now_min]
        if cleared:
            assert c.source[k] == CLEARED and v[k] == cleared[-1]
        elif known:
            latest = max(i for i, _ in known)
            assert c.source[k] == FORECAST
            assert v[k] == [val for i, val in known if i == latest][-1]
        else:
            assert c.source[k] == FALLBACK and v[k] == -1.0


def _spot_site(required: bool = False, n: int = 16, adders=(0.1, 0.05)):
    site = tiny_site(horizon_steps=n)
    rows = [(15 * k, 0.4 if k < 8 else 2.0, None) for k in range(12)]
    spec = EnergySeries(
        name="spot",
        required=required,
        network_cny_per_kwh=adders[0],
        fund_cny_per_kwh=adders[1],
        points=_series(rows, name="spot", export=(0.2,) * 12),
    )
    return dataclasses.replace(site, tariff=dataclasses.replace(site.tariff, energy_series=spec))


def test_series_price_carries_the_adders_and_the_tou_fills_the_rest():
    site = _spot_site()
    h = Horizon(T0, Q, 16)
    imp, exp, cover = series_prices_cny_per_kwh(site.tariff, h, T0, site.calendar)
    want = [0.55] * 8 + [2.15] * 4 + [1.0] * 4  # series + 0.1 + 0.05; TOU peak 1.0 after
    np.testing.assert_allclose(imp, want, atol=1e-12)
    np.testing.assert_allclose(exp, [0.2] * 12 + [0.4] * 4)  # export column, else the tariff's
    assert (cover.cleared, cover.fallback) == (12, 4)


def test_a_required_series_that_does_not_cover_is_refused():
    site = _spot_site(required=True)
    with pytest.raises(SeriesMissingError, match="does not cover 4 of 16 intervals"):
        series_prices_cny_per_kwh(site.tariff, Horizon(T0, Q, 16), T0)
    problem_args = (PlantState(T0), Forecasts(p50={}))
    with pytest.raises(PrepareError, match="required"):
        build_problem(site, Horizon(T0, Q, 16), *problem_args)


def _forecasts(site, n):
    names = [p.name for p in site.assets.pv_arrays] + [
        x.name for x in (*site.assets.base_loads, *site.assets.curtailable_loads)
    ]
    for pe in site.assets.pedf_buildings:
        names += [pe.pv.name, pe.base_load.name]
    return Forecasts(p50={k: np.full(n, 10.0) for k in names})


def test_the_battery_end_value_follows_the_series_price():
    site = _spot_site(n=12, adders=(0.0, 0.0))
    h = Horizon(T0, Q, 12)
    p = build_problem(site, h, PlantState(T0), _forecasts(site, 12), now=T0)
    mean = (8 * 0.4 + 4 * 2.0) / 12  # the series' mean over the horizon, not the TOU's 1.0
    np.testing.assert_allclose(p.price_import_cny_per_kwh, [0.4] * 8 + [2.0] * 4)
    bat = next(b for b in p.batteries if b.spec.name == "bat")
    assert bat.terminal_value_cny_per_kwh == pytest.approx(mean * bat.spec.eta_discharge, rel=1e-12)
    assert any("covers 12 of 12" in m for m in p.notes)


def test_carbon_series_and_the_label_a_report_prints():
    site = tiny_site()
    pts = _series([(60 * k, 0.8, None) for k in range(2)], step=60, name="mef")
    ef_spec = EmissionFactorSeries(name="mef", kind="marginal", points=pts)
    ef = dataclasses.replace(site.carbon.emission_factor, series=ef_spec)
    carbon = dataclasses.replace(site.carbon, emission_factor=ef)
    h = Horizon(T0, Q, 12)
    v, cover = series_ef_kg_per_kwh(carbon, h, T0)
    np.testing.assert_allclose(v, [0.8] * 8 + [0.5] * 4)
    label = factor_label(carbon, cover)
    assert "series 'mef' (marginal) on 8 of 12 intervals" in label
    assert "annual 0.5000 kg/kWh" in label and "on 4" in label


def test_the_objective_carbon_price_sees_the_series_factor():
    site = _spot_site(n=12, adders=(0.0, 0.0))
    pts = _series([(0, 0.9, None), (60, 0.7, -30), (60, 0.1, 30)], step=60, name="mef")
    ef = dataclasses.replace(
        site.carbon.emission_factor,
        series=EmissionFactorSeries(name="mef", kind="marginal", points=pts),
    )
    site = dataclasses.replace(
        site,
        carbon=dataclasses.replace(site.carbon, emission_factor=ef, carbon_price_cny_per_t=80.0),
    )
    h = Horizon(T0, Q, 12)
    p = build_problem(site, h, PlantState(T0), _forecasts(site, 12), now=T0)
    # 08:00-09:00 cleared 0.9; 09:00-10:00 the forecast issued at 07:30 (the one issued at
    # 08:30 is not known at 08:00); 10:00-11:00 nothing: the annual 0.5.
    np.testing.assert_allclose(p.ef_kg_per_kwh, [0.9] * 4 + [0.7] * 4 + [0.5] * 4)
    assert p.carbon_price_cny_per_kg == pytest.approx(0.08)
    assert any(m.startswith("emission factors: series 'mef' (marginal)") for m in p.notes)


def test_the_accounting_bills_an_uncovered_required_interval_at_the_fallback_and_counts_it():
    site = _spot_site(required=True)
    h = Horizon(T0, Q, 16)
    imp, _, cover = series_prices_cny_per_kwh(site.tariff, h, T0, site.calendar, refuse=False)
    assert cover.fallback == 4 and imp[-4:] == pytest.approx([1.0] * 4)  # TOU peak

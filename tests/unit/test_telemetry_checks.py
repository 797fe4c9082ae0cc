"""Telemetry plausibility (:mod:`vpp.park.telemetry_checks`): what each asset can physically
report, the future skew, and a property: a power is accepted exactly inside the asset's range
widened by the margin."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.service_kit import T0, small_site
from vpp.park.model import PARK_METER
from vpp.park.telemetry_checks import (
    AssetRange,
    TelemetryBounds,
    asset_ranges,
    check_readings,
)

SITE = small_site()
RANGES = asset_ranges(SITE)
BOUNDS = TelemetryBounds()
BESS = SITE.assets.batteries[0]  # B02-bess: 2000 kWh, 1000 kW each way
PV = SITE.assets.pv_arrays[0]


def _one(**reading):
    return check_readings([{"ts": T0, **reading}], RANGES, T0, BOUNDS)


def test_every_asset_and_the_park_meter_have_a_range():
    assert set(RANGES) == set(SITE.assets.names()) | {PARK_METER}
    assert RANGES[BESS.name] == AssetRange(-1000.0, 1000.0, 2000.0)
    assert RANGES[PV.name] == AssetRange(-PV.inverter_kw, 0.0)
    kva = SITE.connection.transformer_kva
    assert RANGES[PARK_METER] == AssetRange(-kva, kva)
    load = SITE.assets.base_loads[0].name
    assert RANGES[load].p_min_kw == 0.0 and RANGES[load].p_max_kw > kva  # all supply


def test_a_reading_from_the_future_is_refused_beyond_the_skew():
    skew = timedelta(seconds=BOUNDS.future_skew_s)
    assert _one(asset=BESS.name, ts=T0 + skew, p_kw=0.0) == []
    (r,) = _one(asset=BESS.name, ts=T0 + skew + timedelta(seconds=1), p_kw=0.0)
    assert (r.index, r.asset, r.field) == (0, BESS.name, "ts")
    assert "300 s" in r.reason
    far = T0.replace(year=9999)
    assert _one(asset=BESS.name, ts=far)[0].field == "ts"
    assert _one(asset=BESS.name, ts=T0 - timedelta(days=30)) == []  # late is not implausible


def test_energy_above_capacity_is_refused():
    assert _one(asset=BESS.name, e_kwh=2000.0 * 1.05) == []
    (r,) = _one(asset=BESS.name, e_kwh=5000 * 2000.0)  # 5,000 times the capacity
    assert r.field == "e_kwh" and "capacity 2000 kWh" in r.reason and "2100" in r.reason
    assert _one(asset=PV.name, e_kwh=1.0)[0].reason.startswith("e_kwh: the asset stores no")


def test_power_well_beyond_rating_is_refused_with_both_reasons():
    assert _one(asset=BESS.name, p_kw=1500.0) == []  # the rating + 50 %
    assert _one(asset=BESS.name, p_kw=-1500.0) == []
    (r,) = _one(asset=BESS.name, p_kw=1501.0, e_kwh=1e7, ts=T0 + timedelta(days=1))
    assert r.field == "ts"
    assert r.reason.count(";") == 2 and "p_kw: 1501 kW" in r.reason and "-1500..1500" in r.reason
    assert _one(asset=PV.name, p_kw=-PV.inverter_kw * 1000)[0].field == "p_kw"  # W as kW


def test_the_driver_path_refuses_what_a_schema_would_have():
    rows = [
        {"asset": "nowhere", "ts": T0},
        {"asset": BESS.name, "ts": T0.replace(tzinfo=None)},
        {"asset": BESS.name, "ts": T0, "p_kw": math.nan},
        {"asset": BESS.name, "ts": T0, "e_kwh": math.inf},
        {"asset": BESS.name, "ts": T0, "p_kw": 1.0, "e_kwh": 1000.0},
    ]
    got = check_readings(rows, RANGES, T0, BOUNDS)
    assert [(r.index, r.field) for r in got] == [(0, "asset"), (1, "ts"), (2, "p_kw"), (3, "e_kwh")]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    name=st.sampled_from(sorted(RANGES)),
    x=st.floats(-3.0, 3.0, allow_nan=False),
)
def test_a_power_is_accepted_exactly_inside_the_widened_range(name, x):
    rng = RANGES[name]
    scale_kw = max(abs(rng.p_min_kw), abs(rng.p_max_kw))
    p_kw = x * scale_kw
    widen_kw = BOUNDS.p_margin_frac * scale_kw
    inside = rng.p_min_kw - widen_kw <= p_kw <= rng.p_max_kw + widen_kw
    assert (_one(asset=name, p_kw=p_kw) == []) == inside

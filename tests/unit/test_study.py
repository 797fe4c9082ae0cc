"""The library interface (:mod:`vpp.study`): a park from dataclasses dispatched on plain
arrays, clear errors for bad arrays, a rolling run, the currency label, the README's example,
and a differential against the park-file path (YAML -> prepare -> MPC) for the same park."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.mpc import MpcController
from vpp import study
from vpp.park.config import site_from_dict
from vpp.park.state import Forecasts, PlantState
from vpp.plan.prepare import build_problem

ROOT = Path(__file__).resolve().parents[2]
N = 24


def _park(**kw) -> study.Park:
    bat = study.Battery("bat", e_capacity_kwh=100.0, p_max_kw=50.0, eta_charge=0.9,
                        eta_discharge=0.9)  # fmt: skip
    return study.Park(batteries=[bat], pv=[study.Pv("roof")], **kw)


def _pv(n: int = N) -> np.ndarray:
    h = np.arange(n) % 24
    return np.clip(60.0 * np.sin(np.pi * (h - 6) / 12), 0.0, None)


def _price(n: int = N) -> np.ndarray:
    h = np.arange(n) % 24
    return np.where((h >= 17) & (h < 21), 0.40, np.where(h < 7, 0.08, 0.20))


# --------------------------------------------------------------------------------------------
# One horizon
# --------------------------------------------------------------------------------------------
def test_a_small_park_in_a_few_lines():
    park = _park(currency="EUR")
    res = study.dispatch(park, load_kw=np.full(N, 40.0), pv_kw=_pv(), price_per_kwh=_price(),
                         soc_init_frac=0.2)  # fmt: skip
    assert res.status == "optimal" and res.currency == "EUR"
    bat = res.battery_p_kw["bat"]
    # Arbitrage: the battery charges in the cheap night (0.08) and gives in the evening (0.40).
    assert bat[:7].sum() > 0 and bat[17:21].min() < -1.0
    # Balance every step: load + battery - pv == import - export.
    gap = 40.0 + bat - res.pv_used_kw["roof"] - res.net_kw
    assert np.abs(gap).max() < 1e-6
    # PV is not curtailable by default: all of it is used.
    np.testing.assert_allclose(res.pv_used_kw["roof"], _pv(), atol=1e-9)
    soc = res.battery_soc_frac["bat"]
    assert soc[0] == pytest.approx(0.2) and soc.min() >= -1e-9 and soc.max() <= 1 + 1e-9
    # The terms are currency-neutral names of the same objective (sum == objective).
    assert sum(res.terms.values()) == pytest.approx(res.objective, abs=1e-6)
    assert "energy_import" in res.terms and not any("cny" in k for k in res.terms)
    assert study.check(res) == []


def test_price_reaches_the_problem_and_the_end_value_follows_it():
    price = _price()
    res = study.dispatch(_park(), np.full(N, 40.0), _pv(), price)
    np.testing.assert_array_equal(res.problem.price_import_cny_per_kwh, price)
    # End value: mean of the prices given x eta_discharge (0.9).
    end = res.problem.batteries[0].terminal_value_cny_per_kwh
    assert end == pytest.approx(float(price.mean()) * 0.9, abs=1e-12)
    # Energy bought, by hand from the import and the price.
    assert res.terms["energy_import"] == pytest.approx(float(price @ res.import_kw), abs=1e-6)
    # Set explicitly, it is used as given.
    fixed = study.Park(batteries=[study.Battery("bat", 100, 50, terminal_value_per_kwh=0.123)])
    res = study.dispatch(fixed, np.full(N, 40.0), price_per_kwh=price)
    assert res.problem.batteries[0].terminal_value_cny_per_kwh == 0.123


def test_pv_rating_defaults_to_the_series_max_and_curtailment_is_off():
    park = _park()
    prob = study.build_problem(park, np.full(N, 5.0), 3.0 * _pv(), _price())
    spec = prob.pv[0].spec
    assert spec.inverter_kw == pytest.approx(180.0, abs=1e-9) and not spec.curtailable
    # With a negative price, a curtailable array is curtailed, a default one is not.
    neg = np.full(N, -0.1)
    res = study.dispatch(park, np.full(N, 5.0), 3.0 * _pv(), neg, soc_init_frac=1.0)
    np.testing.assert_allclose(res.pv_curtailed_kw["roof"], 0.0, atol=1e-9)
    cut = study.Park(pv=[study.Pv("roof", curtailable=True)])
    res = study.dispatch(cut, np.full(N, 5.0), 3.0 * _pv(), neg)
    assert res.pv_curtailed_kw["roof"].sum() > 100.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"load_kw": [40.0] * 5 + [-1.0] + [40.0] * 18}, r"load_kw\[5\]: must be >= 0"),
        ({"load_kw": [40.0] * 3 + [np.nan] + [40.0] * 20}, r"load_kw\[3\]: must be a finite"),
        ({"pv_kw": [0.0] * 23}, r"pv_kw\['roof'\]: expected 24 values"),
        ({"pv_kw": [0.0] * 10 + [-0.5] + [0.0] * 13}, r"pv_kw\['roof'\]\[10\]: must be >= 0"),
        ({"price_per_kwh": [0.1] * 25}, r"price_per_kwh: expected 24 values"),
        ({"price_per_kwh": [0.1] * 7 + [np.inf] + [0.1] * 16}, r"price_per_kwh\[7\]"),
        ({"pv_kw": {"other": [0.0] * 24}}, r"unknown arrays \['other'\], missing .*'roof'"),
        ({"soc_init_frac": 1.5}, r"soc_init_frac\['bat'\]: must be in \[0, 1\]"),
        ({"pv_kw": [0.0] * 12 + [80.0] + [0.0] * 11, "park": "rated"}, r"pv_kw\['roof'\]\[12\]"),
    ],
)
def test_bad_arrays_name_the_array_and_the_index(kwargs, message):
    args = {"load_kw": np.full(N, 40.0), "pv_kw": _pv(), "price_per_kwh": 0.2} | kwargs
    park = _park() if args.pop("park", "") != "rated" else study.Park(pv=[study.Pv("roof", 70)])
    with pytest.raises(study.StudyInputError, match=message):
        study.dispatch(park, **args)


def test_the_module_guide_runs_as_written():
    import doctest

    assert doctest.testmod(study).failed == 0


def test_data_without_dates_runs_from_the_epoch_and_a_naive_start_is_utc():
    res = study.dispatch(_park(), np.full(N, 40.0), _pv(), 0.2)
    assert res.problem.horizon.start == study.EPOCH
    res = study.dispatch(_park(), np.full(N, 40.0), _pv(), 0.2, start=datetime(2020, 3, 1))
    assert res.problem.horizon.start == datetime(2020, 3, 1, tzinfo=UTC)


def test_bad_battery_detail_and_duplicate_names_are_refused():
    seg = (study.EfficiencySegment(0.5, 0.9, 0.9), study.EfficiencySegment(1.0, 0.95, 0.9))
    with pytest.raises(study.StudyInputError, match=r"efficiency_segments\[1\].eta_charge"):
        study.Park(batteries=[study.Battery("b", 10, 5, efficiency_segments=seg)])
    with pytest.raises(study.StudyInputError, match=r"Battery 'b'.eta_charge: must be in \(0, 1\]"):
        study.Park(batteries=[study.Battery("b", 10, 5, eta_charge=1.2)])
    with pytest.raises(study.StudyInputError, match="unique"):
        study.Park(batteries=[study.Battery("x", 10, 5)], pv=[study.Pv("x")])


# --------------------------------------------------------------------------------------------
# A rolling horizon
# --------------------------------------------------------------------------------------------
def test_two_day_rolling_run_keeps_soc_in_bounds_and_the_balance():
    T = 48
    rng = np.random.default_rng(7)
    load = 40.0 + 10.0 * rng.random(T)
    bat = study.Battery("bat", 100.0, 50.0, soc_min_frac=0.1, soc_max_frac=0.9)
    park = study.Park(batteries=[bat], pv=[study.Pv("roof")], currency="EUR")
    data = study.Series(load_kw=load, price_per_kwh=_price(T), pv_kw=_pv(T))

    def persistence(k: int, n: int):
        """Yesterday's load at this hour where known (else the mean so far), clear-sky PV."""
        past = load[:k] if k else load[:1]
        f = np.array([load[k + i - 24] if k + i >= 24 and k + i - 24 < k else past.mean()
                      for i in range(n)])  # fmt: skip
        return f, _pv(T)[k : k + n]

    out = study.run(park, data, horizon_steps=24, forecast=persistence, soc_init_frac=0.5)
    assert out.currency == "EUR" and len(out.status) == T
    assert all(s == "optimal" for s in out.status)
    soc = out.battery_soc_frac["bat"]
    assert soc.shape == (T + 1,) and soc.min() >= 0.1 - 1e-9 and soc.max() <= 0.9 + 1e-9
    gap = load + out.battery_p_kw["bat"] - out.pv_used_kw["roof"] - (out.import_kw - out.export_kw)
    assert np.abs(gap).max() < 1e-6
    # The SOC fed forward is the realised one: the energy moves by the applied power.
    e = soc * 100.0
    de = np.diff(e)
    p = out.battery_p_kw["bat"]
    np.testing.assert_allclose(de, np.where(p > 0, 0.95 * p, p / 0.95), atol=1e-9)
    # It does arbitrage over the two days: cheaper than the park without a battery.
    bare = float(_price(T) @ np.maximum(load - _pv(T), 0.0))
    assert out.energy_cost < bare - 1.0


def test_plan_and_outcome_agree_with_taper_and_segments():
    """Perfect foresight: the realised battery (the simulated park's physics) does what
    the plan said, step by step, with the taper and the segments on."""
    T = 30
    seg = (study.EfficiencySegment(0.4, 0.97, 0.97), study.EfficiencySegment(1.0, 0.88, 0.9))
    bat = study.Battery("bat", 100.0, 50.0, taper=study.ChargeTaper(0.7, 0.2),
                        efficiency_segments=seg, soc_max_frac=0.95)  # fmt: skip
    park = study.Park(batteries=[bat], pv=[study.Pv("roof")])
    out = study.run(park, study.Series(np.full(T, 30.0), _price(T), _pv(T)), 12, soc_init_frac=0.3)
    np.testing.assert_allclose(out.battery_p_kw["bat"], out.plan_battery_p_kw["bat"], atol=1e-6)
    assert out.battery_soc_frac["bat"].max() > 0.7  # the taper was reached


# --------------------------------------------------------------------------------------------
# The same park through the park file (YAML -> prepare -> MPC): equal within 1e-6
# --------------------------------------------------------------------------------------------
PARK_YAML = """
site:
  name: study differential
  location: {latitude_deg: 30.0, longitude_deg: 120.0, tz: UTC}
connection: {bus: park, vn_kv: 10.0, transformer_kva: 100000, import_max_kw: 1.0e6,
             export_max_kw: 1.0e6}
tariff: ../tariffs/guangdong_2024.yaml
carbon: {factors: ../carbon/cn_grid_factors.yaml, region: national, year: 2022,
         carbon_price_cny_per_t: 50.0}
buses: [{name: park, vn_kv: 10.0, kind: connection}]
dispatch: {step_minutes: 60, horizon_steps: 24}
assets:
  batteries:
  - {name: bat, bus: park, e_kwh: 100, p_charge_max_kw: 50, p_discharge_max_kw: 40,
     eta_charge: 0.93, eta_discharge: 0.94, soc_min_frac: 0.1, soc_max_frac: 0.9,
     soc_init_frac: 0.3, degradation_cny_per_kwh: 0.02}
  pv_arrays:
  - {name: roof, bus: park, kwp: 80, inverter_kw: 70, curtailable: false}
  base_loads:
  - {name: load, bus: park, profile: {source: "simbench:G1-B", scale: 50}}
"""


def test_equals_the_park_file_path():
    site = site_from_dict(yaml.safe_load(PARK_YAML), ROOT / "configs" / "parks" / "study.yaml")
    t0 = datetime(2024, 7, 15, tzinfo=UTC)
    hz = study.build_problem(study.Park(), np.zeros(N), start=t0).horizon
    load, pv = 30.0 + 10.0 * np.cos(np.arange(N) / 4.0), np.minimum(_pv(), 70.0)
    fc = Forecasts(p50={"load": load, "roof": pv})
    ref_problem = build_problem(site, hz, PlantState(at=t0), fc)
    ref = MpcController().dispatch(ref_problem)

    bat = study.Battery("bat", 100, 50, p_discharge_max_kw=40, eta_charge=0.93,
                        eta_discharge=0.94, soc_min_frac=0.1, soc_max_frac=0.9,
                        degradation_per_kwh=0.02)  # fmt: skip
    park = study.Park(batteries=[bat], pv=[study.Pv("roof", p_rated_kw=70)],
                      import_max_kw=1e6, export_max_kw=1e6, carbon_price_per_kg=0.05,
                      demand_charge_per_kw=32.0, currency="CNY")  # fmt: skip
    res = study.dispatch(
        park, load, pv, price_per_kwh=ref_problem.price_import_cny_per_kwh,
        export_price_per_kwh=ref_problem.price_export_cny_per_kwh,
        ef_kg_per_kwh=ref_problem.ef_kg_per_kwh, soc_init_frac=0.3, start=t0,
    )  # fmt: skip
    assert res.status == ref.status == "optimal"
    # The guangdong tariff's 32 CNY/kW month demand charge reaches both the same way.
    assert ref_problem.demand_charge_cny_per_kw == pytest.approx(32.0)
    np.testing.assert_allclose(res.battery_p_kw["bat"], ref.assets["bat"].p_kw, atol=1e-6)
    np.testing.assert_allclose(res.battery_e_kwh["bat"], ref.assets["bat"].e_kwh, atol=1e-6)
    np.testing.assert_allclose(res.net_kw, ref.p_net_kw, atol=1e-6)
    assert res.objective == pytest.approx(ref.objective_cny, abs=1e-6)
    for k, v in ref.terms_cny.items():
        assert res.terms[k] == pytest.approx(v, abs=1e-6), k


# --------------------------------------------------------------------------------------------
# The README's example runs as printed
# --------------------------------------------------------------------------------------------
def test_readme_example_runs_as_printed():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it as a library", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # the README's own snippet, as printed
    res = scope["res"]
    assert res.status == "optimal" and res.currency == "EUR"
    assert np.abs(res.battery_soc_frac["bat"]).max() <= 1 + 1e-9


def test_a_bad_forecast_names_the_step_it_was_made_at():
    def bad(k: int, n: int):
        f = np.full(n, 10.0)
        if k == 3:
            f[2] = -1.0
        return f, np.zeros(n)

    data = study.Series(np.full(6, 10.0), _price(6), np.zeros(6))
    with pytest.raises(study.StudyInputError, match=r"forecast\(k=3, n=3\): load_kw\[2\]"):
        study.run(_park(), data, 4, forecast=bad)


@settings(max_examples=15, deadline=None)
@given(
    load=st.lists(st.floats(0, 200), min_size=8, max_size=8),
    price=st.lists(st.floats(-0.2, 1.0), min_size=8, max_size=8),
    soc0=st.floats(0, 1),
)
def test_any_input_keeps_the_balance_and_the_soc_bounds(load, price, soc0):
    """For any load, any price (negative ones too) and any start: the plan balances at the
    connection every step and keeps the SOC within its bounds."""
    bat = study.Battery("bat", 100.0, 50.0, soc_min_frac=0.1, soc_max_frac=0.9)
    park = study.Park(batteries=[bat], pv=[study.Pv("roof")])
    pv = _pv(8)
    res = study.dispatch(park, load, pv, price, soc_init_frac=min(max(soc0, 0.1), 0.9))
    assert res.ok
    gap = np.asarray(load) + res.battery_p_kw["bat"] - res.pv_used_kw["roof"] - res.net_kw
    assert np.abs(gap).max() < 1e-6
    soc = res.battery_soc_frac["bat"]
    assert soc.min() >= 0.1 - 1e-6 and soc.max() <= 0.9 + 1e-6


def test_a_rolling_run_shortens_its_horizon_at_the_end_of_the_series():
    T = 6
    out = study.run(_park(), study.Series(np.full(T, 10.0), _price(T), np.zeros(T)), 4)
    assert len(out.status) == T and out.battery_soc_frac["bat"].shape == (T + 1,)

"""DR targets and the delivered-so-far feedback, as plain arrays (no solver).

Properties of :func:`vpp.plan.dr_targets.dr_targets` for any events, baseline, forecast
error, reserve and progress: the corridor is never empty (and never a point where the
window has begun), a plan anywhere inside an event's energy row ends the event inside its
band (at most half the band from the middle), each interval is owned by one event only, and
valley filling is peak shaving mirrored about the baseline. Then
:func:`vpp.accounting.dr_progress.progress` against the settlement's own figures.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.accounting import dr_baseline
from vpp.accounting.dr_progress import past_horizon, progress
from vpp.park import dr_rules
from vpp.park.model import DemandResponseEvent, DrDirection, DrStatus, DrWindow, Horizon
from vpp.park.state import DrProgress
from vpp.plan.dr_targets import dr_targets

TZ = ZoneInfo("Asia/Shanghai")
STEP = timedelta(minutes=15)
T0 = datetime(2026, 7, 15, 12, 0, tzinfo=TZ)
N = 16
H = Horizon(T0, STEP, N)
TOL = 1e-6


@st.composite
def events(draw, direction: DrDirection | None = None, cap: bool = True):
    """One to three confirmed or active events with windows around the horizon (some begun
    before it, some ending after it)."""
    out = []
    for i in range(draw(st.integers(1, 3))):
        k0 = draw(st.integers(-6, N - 1))
        length = draw(st.integers(1, 12))
        lo = draw(st.floats(0.5, 1.0))
        hi = draw(st.floats(1.0, 1.5))
        d = direction or draw(st.sampled_from(list(DrDirection)))
        capped = cap and d is DrDirection.PEAK_SHAVING and draw(st.booleans())
        out.append(
            DemandResponseEvent(
                f"E{i}",
                d,
                (DrWindow(T0 + k0 * STEP, T0 + (k0 + length) * STEP),),
                draw(st.floats(10.0, 800.0)),
                import_cap_kw=draw(st.floats(200.0, 1500.0)) if capped else None,
                effective_band_frac=(lo, hi),
                status=draw(st.sampled_from([DrStatus.CONFIRMED, DrStatus.ACTIVE])),
            )
        )
    return out


arrays = st.lists(st.floats(0.0, 3000.0), min_size=N, max_size=N).map(np.array)
margins = st.lists(st.floats(0.0, 500.0), min_size=N, max_size=N).map(np.array)


@st.composite
def progresses(draw, evs):
    out = {}
    for e in evs:
        if draw(st.booleans()):
            req = draw(st.floats(0.0, 2000.0))
            out[e.event_id] = DrProgress(draw(st.floats(-500.0, 2500.0)), req, 4)
    return out


def _begun(e: DemandResponseEvent) -> np.ndarray:
    return np.array(
        [any(w.start <= T0 and w.start <= t < w.end for w in e.windows) for t in H.times()]
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data(), base=arrays, margin=margins, reserve=margins)
def test_the_corridor_is_never_empty_and_never_a_point_in_a_begun_window(
    data, base, margin, reserve
) -> None:
    evs = data.draw(events())
    t = dr_targets(evs, H, base, margin, reserve, data.draw(progresses(evs)))
    assert np.all(t.import_max_kw >= t.import_min_kw - TOL)
    by_id = {e.event_id: e for e in evs}
    for row in t.rows:
        e = by_id[row.event_id]
        if e.cap_only:
            continue
        open_ = row.owned & _begun(e)
        width = t.import_max_kw[open_] - t.import_min_kw[open_]
        half = 0.5 * (e.effective_band_frac[1] - e.effective_band_frac[0])
        assert np.all(width >= 2 * np.maximum(margin[open_], 0.5 * half * e.target_kw) - TOL)
        assert row.e_min_kwh <= row.e_max_kwh + TOL


@settings(max_examples=60, deadline=None)
@given(data=st.data(), base=arrays, margin=margins)
def test_a_plan_inside_the_energy_row_ends_the_event_inside_its_band(data, base, margin) -> None:
    """Delivered so far + the row's ends on the horizon + the aim after it, over the whole
    request: the middle of the band +- at most half the band's half width."""
    evs = data.draw(events(cap=False))
    prog = data.draw(progresses(evs))
    t = dr_targets(evs, H, base, margin, 0.0, prog)
    by_id = {e.event_id: e for e in evs}
    for row in t.rows:
        lo, hi = by_id[row.event_id].effective_band_frac
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        n_h = int(row.owned.sum())
        n_b = round(row.requested_beyond_kwh / (by_id[row.event_id].target_kw * H.dt_h))
        beyond = row.e_aim_kwh * n_b / n_h  # the same aim per interval after the horizon
        q = row.requested_kwh
        assert row.delivered_kwh + row.e_aim_kwh + beyond == pytest.approx(mid * q, abs=1e-6)
        for end in (row.e_min_kwh, row.e_max_kwh):
            ratio = (row.delivered_kwh + end + beyond) / q
            assert mid - half / 2 - TOL <= ratio <= mid + half / 2 + TOL
            assert lo - TOL <= ratio <= hi + TOL


@settings(max_examples=60, deadline=None)
@given(data=st.data(), base=arrays)
def test_each_interval_is_owned_by_the_stricter_event_once(data, base) -> None:
    evs = data.draw(events())
    t = dr_targets(evs, H, base)
    owned = np.array([r.owned for r in t.rows]).reshape(len(t.rows), N)
    assert np.all(owned.sum(axis=0) <= 1)
    times = H.times()
    order = dr_rules.ordered(evs)
    covered = np.array([dr_rules.covers(e, times) for e in order])
    owner = dr_rules.attribute(covered, np.array([dr_rules.strictness_kw(e, base) for e in order]))
    for row in t.rows:
        i = [e.event_id for e in order].index(row.event_id)
        assert np.array_equal(row.owned, owner == i)
    # the corridor is set exactly where some event owns the interval
    assert np.array_equal(np.isfinite(t.import_max_kw) | np.isfinite(t.import_min_kw), owner >= 0)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), base=arrays, margin=margins, reserve=margins)
def test_valley_filling_is_peak_shaving_mirrored_about_the_baseline(
    data, base, margin, reserve
) -> None:
    peak = data.draw(events(DrDirection.PEAK_SHAVING, cap=False))
    valley = [replace(e, direction=DrDirection.VALLEY_FILLING) for e in peak]
    prog = data.draw(progresses(peak))
    p = dr_targets(peak, H, base, margin, reserve, prog)
    v = dr_targets(valley, H, base, margin, reserve, prog)
    np.testing.assert_allclose(v.import_max_kw - base, base - p.import_min_kw, atol=1e-6)
    np.testing.assert_allclose(v.import_min_kw - base, base - p.import_max_kw, atol=1e-6)
    for rp, rv in zip(p.rows, v.rows, strict=True):
        assert (rp.e_min_kwh, rp.e_max_kwh) == pytest.approx((rv.e_min_kwh, rv.e_max_kwh))
        assert rp.sign == 1.0 and rv.sign == -1.0


def _at(k: int) -> datetime:
    return T0 + k * STEP


def test_progress_counts_own_metered_intervals_as_the_settlement_does() -> None:
    """Two overlapping events over 12:00-13:30; 12:45-13:00 belongs to the stricter one (B,
    600 kW); one reading is missing. Progress at 13:30 equals the settlement of the same
    meter data, interval for interval."""
    a = DemandResponseEvent(
        "A", DrDirection.PEAK_SHAVING, (DrWindow(_at(0), _at(4)),), 400.0,
        status=DrStatus.ACTIVE,
    )  # fmt: skip
    b = DemandResponseEvent(
        "B", DrDirection.PEAK_SHAVING, (DrWindow(_at(3), _at(6)),), 600.0,
        status=DrStatus.ACTIVE,
    )  # fmt: skip
    past = past_horizon([a, b], _at(6), STEP)
    assert past == Horizon(_at(0), STEP, 6)
    base = np.full(6, 2000.0)
    real = np.array([1650.0, 1600.0, np.nan, 1400.0, 1500.0, 1350.0])
    got = progress([a, b], past, real, base)
    assert got["A"] == DrProgress(
        delivered_kwh=(350 + 400) * 0.25, requested_kwh=2 * 400 * 0.25, intervals_done=2,
        intervals_missing=1,
    )  # fmt: skip
    assert got["B"].intervals_done == 3 and got["B"].intervals_missing == 0
    assert got["B"].delivered_kwh == pytest.approx((600 + 500 + 650) * 0.25)
    settled = dr_baseline.settle_run([a, b], past, real, base)
    for s in settled:
        p = got[s.event_id]
        assert p.delivered_kwh == pytest.approx(s.delivery.delivered_kwh)
        assert p.requested_kwh == pytest.approx(s.delivery.requested_kwh)
        assert p.intervals_done + p.intervals_missing == s.intervals_owned


def test_progress_of_a_cap_only_event_counts_the_energy_over_its_cap() -> None:
    cap = DemandResponseEvent(
        "C", DrDirection.PEAK_SHAVING, (DrWindow(_at(0), _at(4)),), 0.0,
        import_cap_kw=1500.0, status=DrStatus.ACTIVE,
    )  # fmt: skip
    past = Horizon(_at(0), STEP, 3)
    got = progress([cap], past, np.array([1400.0, 1600.0, 1500.0]), np.full(3, 1800.0))["C"]
    assert got.intervals_over_cap == 1 and got.e_over_cap_kwh == pytest.approx(100 * 0.25)
    assert got.requested_kwh == pytest.approx(3 * 300 * 0.25)
    assert past_horizon([cap], _at(0), STEP) is None  # nothing has passed yet

"""The service feeds the plan what a DR event delivered so far on the stored park meter
(:meth:`vpp.runtime.dr_lifecycle.DrLifecycle._dr_progress`), against the settlement's own
baseline, and says how many intervals had no reading; on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.integration.test_dr_settlement import STEP, WINDOW, _history, _meter
from tests.service_kit import dr_body, make_runtime
from vpp.park.calendar import is_workday
from vpp.store import repo


def test_the_plan_mid_window_stands_on_the_metered_delivery_so_far(db_url):
    rt = make_runtime(db_url, stale_after_s=3600)
    rows, window_kw = _history()
    rt.ingest(rows, source="meter")
    body = dr_body("SG-PROG", cap_kw=None, requested_kw=300.0)  # settled on its energy
    with rt.engine.begin() as conn:
        repo.insert_dr(conn, "SG-PROG", "confirmed", body, "utility")
    # 08:30-09:15 has passed: readings for the first two intervals, none for the third.
    at = WINDOW[0] + 3 * STEP
    rt.clock.set(at)
    rt.ingest([_meter(WINDOW[0] + k * STEP, 1500.0) for k in range(2)], source="meter")
    rt.run_cycle(at=at)
    workdays = sorted(d for d in window_kw if is_workday(d))[-10:]
    top5 = sorted(workdays, key=window_kw.get)[-5:]
    base_kw = sum(window_kw[d] for d in top5) / 5
    progress = rt.current.plan.messages
    (note,) = [m for m in progress if m.startswith("DR SG-PROG:") and "so far" in m]
    delivered = 2 * (base_kw - 1500.0) * 0.25
    assert f"{delivered:,.1f} of {2 * 300 * 0.25:,.1f} kWh delivered so far" in note
    assert "over 2 own intervals, 1 without a meter reading" in note
    # The rest is re-aimed from it: 300 kWh asked in all (the missing interval is not
    # settled, as the settlement does not settle it), the middle of the band, less what was
    # delivered, over the one interval left.
    assert f"{150.0 + 75.0 - delivered:,.1f} kWh over the 1 own intervals left" in note
    assert rt.current.plan.dr_decisions["SG-PROG"].weighed  # the demo's terms are weighed

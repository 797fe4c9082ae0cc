"""Why the park overloaded an element: the plan itself, or the park drawing other than planned
beyond (or within) the margin the plan kept (vpp.sim.realised.explain)."""

from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np

from vpp.grid.network import Violation
from vpp.sim.realised import AppliedPlans, RealisedGrid, explain

T0 = datetime(2026, 7, 15, 8, 0)
TIMES = [T0 + timedelta(minutes=15 * k) for k in range(4)]


def test_each_violated_interval_gets_its_cause_and_the_worst_a_sentence():
    real = SimpleNamespace(
        violations=[
            Violation(1, "T-M02", "trafo_loading", 137.0, 100.0),
            Violation(2, "T-M02", "trafo_loading", 104.0, 100.0),
            Violation(3, "T-M02", "trafo_loading", 101.0, 100.0),
        ]
    )
    planned = SimpleNamespace(violations=[Violation(3, "T-M02", "trafo_loading", 100.5, 100.0)])
    done = RealisedGrid(
        checked=True,
        by_element=[
            {"element": "T-M02", "kind": "trafo_loading", "intervals": 3,
             "worst": 137.0, "limit": 100.0, "worst_at": TIMES[1].isoformat()}
        ],
    )  # fmt: skip
    real_bus = {"M02-LV": np.array([600.0, 1019.0, 790.0, 765.0]), "M01-LV": np.full(4, 900.0)}
    plans = AppliedPlans(
        bus_p_kw={"M02-LV": np.array([600.0, 614.0, 700.0, 765.0]), "M01-LV": np.zeros(4)},
        error_up_kw={"M02-LV": np.array([0.0, 128.0, 100.0, 0.0])},
        error_down_kw={},
    )
    explain(done, real, planned, real_bus, plans, TIMES, {"T-M02": ["M02-LV"]})
    row = done.by_element[0]
    # Interval 1: +405 kW against a 128 kW margin; 2: +90 kW within its 100 kW margin (the
    # linearisation fell short); 3: the plan itself at 100.5 %. M01 strayed by more, but it
    # is not under T-M02.
    assert row["intervals_plan"] == 1
    assert row["intervals_forecast_error_beyond_margin"] == 1
    assert row["intervals_forecast_error_within_margin"] == 1
    assert row["why_worst"] == (
        "M02-LV drew 1,019 kW against 614 kW planned (+405 kW; the plan kept a margin of "
        "128 kW there)"
    )

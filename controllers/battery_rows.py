"""The battery block's optional rows (:mod:`vpp.park.battery_detail`): a charge taper near
full and efficiency segments. Nothing is added for a battery without them, so a park without
either builds the same LP as before.

- Taper: ``p_charge_kw[t] <= a - slope x e_kwh[t]`` on the energy at the start of each
  interval (the simulated park limits the interval's charge by the energy it starts with).
- Segments: the battery's charge power is the sum of its segment powers, each within its
  width, and the stored energy their sum weighted by each segment's efficiency (discharge
  likewise). Efficiencies falling from segment to segment make this the concave
  piecewise-linear stored energy of the physics as long as the plan wants energy stored (a
  plan that wants to waste energy could fill a poor segment first; the invariants would then
  report the SOC off its power).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from vpp.park.battery_detail import segments, taper_line
from vpp.park.model import Battery


class SegmentRows:
    """Segment variables of the batteries that have segments (rows ``idx`` of the block)."""

    def __init__(self, specs: list[Battery], pc: cp.Variable, pd: cp.Variable, dt_h: float):
        self.idx = [i for i, b in enumerate(specs) if b.efficiency_segments]
        self.constraints: list[cp.Constraint] = []
        self.charge: dict[int, cp.Variable] = {}
        self.discharge: dict[int, cp.Variable] = {}
        n = pc.shape[1]
        rows: list = [np.zeros(n) for _ in specs]
        for i in self.idx:
            flows = []
            for charge, total, store in ((True, pc, self.charge), (False, pd, self.discharge)):
                segs = segments(specs[i], charge)
                width = np.array([w for w, _ in segs]).reshape(-1, 1)
                eta = np.array([e for _, e in segs]).reshape(-1, 1)
                name = f"battery_{'charge' if charge else 'discharge'}_seg_kw"
                x = cp.Variable((len(segs), n), nonneg=True, name=name)
                self.constraints += [x <= width, cp.sum(x, axis=0) == total[i, :]]
                gain = eta * dt_h if charge else -dt_h / eta
                flows.append(cp.sum(cp.multiply(gain, x), axis=0))
                store[i] = x
            rows[i] = flows[0] + flows[1]
        self.flow = cp.vstack(rows) if self.idx else None

    def mask(self, gain: np.ndarray) -> np.ndarray:
        """``gain`` (one per battery, a column) with the segmented batteries' rows at 0: their
        energy flow comes from the segments."""
        out = gain.copy()
        out[self.idx] = 0.0
        return out

    def detail(self, i: int) -> dict[str, np.ndarray]:
        """Battery row ``i``'s segment powers after a solve (kW), one array per segment."""
        if i not in self.charge:
            return {}
        out = {}
        for kind, x in (("charge", self.charge[i]), ("discharge", self.discharge[i])):
            for j, row in enumerate(np.atleast_2d(x.value)):
                out[f"p_{kind}_seg{j}_kw"] = row.copy()
        return out


def taper_rows(specs: list[Battery], pc: cp.Variable, e: cp.Variable) -> list[cp.Constraint]:
    """The taper's limit for each battery that has one (none for the others)."""
    out = []
    for i, b in enumerate(specs):
        if b.taper is not None:
            a, slope = taper_line(b)
            out.append(pc[i, :] <= a - slope * e[i, :-1])
    return out

"""Grid emission factor on a horizon: the annual value, or the hourly series when given."""

from __future__ import annotations

import numpy as np

from vpp.park.model import Carbon, Horizon


def emission_factor_kg_per_kwh(carbon: Carbon, horizon: Horizon) -> np.ndarray:
    ef = carbon.emission_factor
    if ef.hourly_ef_kg_per_kwh is None:
        return np.full(horizon.n, ef.ef_kg_per_kwh)
    hourly = np.asarray(ef.hourly_ef_kg_per_kwh, dtype=float)
    return np.array([hourly[t.hour] for t in horizon.times()])

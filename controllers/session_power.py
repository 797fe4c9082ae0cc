"""Per-session power of a plan: each EV charger's schedule split over the sessions it serves.

A charger serves one car at a time, so a session's power is its charger's planned power over
the steps the car is plugged (``arrival_k`` .. ``departure_k - 1``) and 0 elsewhere. Every
plan carries it in its charger's ``detail`` under ``session_kw:<session_id>`` (kW, load
convention); a controller that allocates sessions itself (EDF, LLF) has set it already and
is left as it is. Pure computation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from controllers.problem import DispatchProblem, DispatchResult

SESSION_KEY = "session_kw:"  # detail key prefix of a session's power (kW)


def session_key(session_id: str) -> str:
    return f"{SESSION_KEY}{session_id}"


def sessions_of(detail: dict) -> dict[str, np.ndarray]:
    """``{session_id: kW per step}`` from a charger schedule's ``detail``."""
    n = len(SESSION_KEY)
    return {
        k[n:]: np.asarray(v, dtype=float) for k, v in detail.items() if k.startswith(SESSION_KEY)
    }


def with_session_power(problem: DispatchProblem, result: DispatchResult) -> DispatchResult:
    """``result`` with every charger's sessions' power in its detail (see the module)."""
    assets = dict(result.assets)
    changed = False
    for ch in problem.ev_chargers:
        s = assets.get(ch.spec.name)
        if s is None or not ch.sessions or any(k.startswith(SESSION_KEY) for k in s.detail):
            continue
        p = np.asarray(s.p_kw, dtype=float)
        detail = dict(s.detail)
        for sess in ch.sessions:
            mask = np.zeros(len(p), dtype=bool)
            mask[max(sess.arrival_k, 0) : max(min(sess.departure_k, len(p)), 0)] = True
            detail[session_key(sess.session_id)] = np.where(mask, p, 0.0)
        assets[ch.spec.name] = dataclasses.replace(s, detail=detail)
        changed = True
    return dataclasses.replace(result, assets=assets) if changed else result

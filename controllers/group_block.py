"""Limit-group rows of the dispatch model (:class:`controllers.problem.GroupRow`).

Every row ``sum_i coeff[i] * p_kw[assets[i], t] + fixed_kw[t] <= limit_kw`` becomes one row of
the cvxpy model per interval, on the device blocks' power expressions. The coefficients are
structure (constants, in the model's cache key: :func:`structure`); the limit less the fixed
part is a ``cp.Parameter`` (``grp_room``) refreshed every interval (DPP).

A row is soft: the fixed part alone (a base load above a sub-circuit's limit, PV that may not
be curtailed above an export limit) can make it impossible, and a plan must still come out.
Its slack is priced as a connection limit's (``Penalties.connection_cny_per_kwh``) and
reported as the relaxation ``group_limit`` on ``<group>/<kind>`` (kW over).

:func:`binding` lists the rows the plan sits on (within :data:`BINDING_KW`) or breaks, for
the plan's binding constraints; :func:`violations` serves the invariants.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from controllers.blocks import Block
from controllers.problem import DispatchProblem, DispatchResult, GroupRow

RELAXATION = "group_limit"
BINDING_KW = 1e-2  # a row within this of its limit binds (kW)


def label(row: GroupRow) -> str:
    return f"{row.group}/{row.kind}"


def structure(p: DispatchProblem) -> tuple:
    """What the rows add to the model's cache key (their assets and coefficients)."""
    return tuple((r.group, r.kind, r.assets, r.coeff) for r in p.group_rows)


def fixed(row: GroupRow, n: int) -> np.ndarray:
    return np.zeros(n) if row.fixed_kw is None else np.asarray(row.fixed_kw, float)


def build(p: DispatchProblem, blocks: list[Block], helper: Block, params: dict) -> list:
    """The rows' constraints on ``blocks``' powers (none without rows). Raises ValueError
    for a row naming an asset no block holds."""
    rows = p.group_rows
    if not rows:
        return []
    n, r_n = p.n, len(rows)
    where = {name: (bi, i) for bi, b in enumerate(blocks) for i, (name, _) in enumerate(b.rows)}
    mats = [np.zeros((r_n, len(b.rows))) for b in blocks]
    for j, row in enumerate(rows):
        for name, c in zip(row.assets, row.coeff, strict=True):
            if name not in where:
                raise ValueError(f"limit group {row.group}: asset {name!r} is not dispatched")
            bi, i = where[name]
            mats[bi][j, i] += c
    expr: cp.Expression = cp.Constant(np.zeros((r_n, n)))
    for a, b in zip(mats, blocks, strict=True):
        if a.any():
            expr = expr + a @ b.p_var
            if b.p_const is not None:
                expr = expr + a @ b.p_const
    params["grp_room"] = cp.Parameter((r_n, n))
    s = helper.slack(
        (r_n, n), RELAXATION, [label(r) for r in rows], "kW", p.penalties.connection_cny_per_kwh
    )
    return [expr <= params["grp_room"] + s]


def update(params: dict, p: DispatchProblem, big: float) -> None:
    if "grp_room" not in params:
        return
    room = np.array([r.limit_kw - fixed(r, p.n) for r in p.group_rows]).reshape(-1, p.n)
    params["grp_room"].value = np.clip(np.nan_to_num(room, posinf=big, neginf=-big), -big, big)


def row_values_kw(row: GroupRow, result: DispatchResult) -> np.ndarray:
    """The row's left-hand side under the plan (kW per interval)."""
    n = result.horizon.n
    lhs = fixed(row, n).copy()
    for name, c in zip(row.assets, row.coeff, strict=True):
        lhs += c * np.asarray(result.assets[name].p_kw, float)
    return lhs


def violations(p: DispatchProblem, result: DispatchResult, tol_kw: float) -> list[str]:
    """Every row the plan breaks by more than ``tol_kw`` beyond what it reports relaxed."""
    relaxed: dict[str, float] = {}
    for r in result.relaxed:
        if r.constraint == RELAXATION:
            relaxed[r.asset] = max(relaxed.get(r.asset, 0.0), r.amount)
    out = []
    for row in p.group_rows:
        if any(a not in result.assets for a in row.assets):
            out.append(f"limit group {label(row)}: a member is missing from the plan")
            continue
        over = row_values_kw(row, result) - row.limit_kw - relaxed.get(label(row), 0.0)
        if over.max(initial=0.0) > tol_kw:
            out.append(
                f"limit group {label(row)}: {over.max():.3f} kW above its limit "
                f"{row.limit_kw:.3f} kW beyond what was relaxed"
            )
    return out


def binding(p: DispatchProblem, result: DispatchResult) -> list[dict]:
    """The group rows the plan sits on or breaks: one entry per group and kind, at its
    tightest interval (``value`` / ``limit`` in kW, ``intervals`` that bind)."""
    best: dict[str, dict] = {}
    for row in p.group_rows:
        if any(a not in result.assets for a in row.assets):
            continue
        gap = row_values_kw(row, result) - row.limit_kw
        at = np.flatnonzero(gap >= -BINDING_KW)
        if not at.size:
            continue
        k = int(at[np.argmax(gap[at])])
        entry = {
            "group": row.group,
            "kind": row.kind,
            "value_kw": float(gap[k] + row.limit_kw),
            "limit_kw": float(row.limit_kw),
            # value / limit: for a phase row (kW of current along a facet of the 12-gon
            # at the phase voltage) the share of the phase's current limit it uses at most.
            "utilisation": float((gap[k] + row.limit_kw) / row.limit_kw) if row.limit_kw else 0.0,
            "step": k,
            "intervals": int(at.size),
            "broken": bool(gap[k] > BINDING_KW),
        }
        old = best.get(label(row))
        if old is None or entry["value_kw"] - entry["limit_kw"] > old["value_kw"] - old["limit_kw"]:
            best[label(row)] = entry
    return list(best.values())

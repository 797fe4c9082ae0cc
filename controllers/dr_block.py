"""The DR event rows of the dispatch model (:mod:`controllers.mpc`), built once, refreshed
each interval.

Per called event (:class:`~controllers.problem.DrEventRow`, arithmetic in
:mod:`controllers.dr_rows`), on ``net = import - export`` (Variables only, so that the
Parameter coefficients stay DPP):

* an energy row ``bot <= c @ net <= top``: the event's delivery over its own intervals
  ahead within its aim +- tol; soft, each side with a slack in kWh (``dr_energy_short``,
  ``dr_energy_over``) named after the event;
* a tie-break towards each interval's aim (:data:`controllers.dr_rows.AIM_CNY_PER_KWH`, in
  the objective's penalty part: a weight, not money);
* the reserve of a window not begun (:func:`controllers.dr_rows.reserve_limits`), soft at
  :data:`controllers.dr_rows.RESERVE_CNY_PER_KWH`, a margin whose slack is not reported;
* for an event the plan does not follow: ``short >= g0 + g @ net``, ``short >= 0``, its
  non-performance penalty ``w x short`` in the term ``dr_penalty``; a cap-only event not
  followed pays it on ``over >= net - cap`` instead.

Rows come in blocks of :data:`ROW_BLOCK` (unused rows are zero with open bounds), so that a
new event rarely changes the structure; the model is rebuilt when the first event arrives
and when more than a block's worth overlap.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from controllers import dr_rows
from controllers.blocks import Block, Slack, finite
from controllers.problem import DispatchProblem, Relaxation

ROW_BLOCK = 4
ENERGY_SLACKS = ("dr_energy_short", "dr_energy_over")
CORRIDOR_SLACKS = ("dr_import_cap", "dr_import_floor")
AIM = "dr_aim"  # the tie-break's deviation: a weight, never reported as a relaxation
RESERVE_SLACKS = ("dr_reserve_cap", "dr_reserve_floor")  # margins: not reported either
QUIET = (AIM, *RESERVE_SLACKS)

TOL = 1e-3  # kW of slack below this is numerical noise (controllers.blocks.TOL)


def row_count(problem: DispatchProblem) -> int:
    """Rows the model allocates for ``problem``'s DR events: 0, or a multiple of the block."""
    r = len(problem.dr_rows)
    return 0 if r == 0 else ROW_BLOCK * ((r + ROW_BLOCK - 1) // ROW_BLOCK)


def build(
    p: DispatchProblem,
    helper: Block,
    params: dict[str, cp.Parameter],
    imp: cp.Variable,
    exp: cp.Variable,
) -> list[cp.Constraint]:
    """The rows' Parameters (into ``params``), slacks and penalty term (into ``helper``) and
    constraints; none when ``p`` has no DR event."""
    rows, n = row_count(p), p.n
    if not rows:
        return []
    params["dr_e_c"] = cp.Parameter((rows, n))
    params["dr_e_bot"] = cp.Parameter(rows)
    params["dr_e_top"] = cp.Parameter(rows)
    params["dr_np_g"] = cp.Parameter((rows, n))
    params["dr_np_g0"] = cp.Parameter(rows)
    params["dr_np_w"] = cp.Parameter(rows, nonneg=True)  # CNY per kWh short
    params["dr_capx"] = cp.Parameter(n)
    params["dr_cap_w"] = cp.Parameter(n, nonneg=True)  # CNY per kWh over * dt
    names = ["-"] * rows  # the event ids, set by update (one list for both slacks)
    weight = p.penalties.dr_cny_per_kwh
    s_short = helper.slack((rows,), ENERGY_SLACKS[0], names, "kWh", weight, per_step=False)
    s_over = helper.slack((rows,), ENERGY_SLACKS[1], names, "kWh", weight, per_step=False)
    params["dr_aim"] = cp.Parameter(n)
    params["dr_aim_off"] = cp.Parameter(n, nonneg=True)  # 0 where an event aims, big elsewhere
    dev = helper.slack((1, n), AIM, ["-"], "kW", dr_rows.AIM_CNY_PER_KWH)
    params["dr_rsv_max"] = cp.Parameter(n)
    params["dr_rsv_min"] = cp.Parameter(n)
    w_rsv = dr_rows.RESERVE_CNY_PER_KWH
    s_rx = helper.slack((1, n), RESERVE_SLACKS[0], ["-"], "kW", w_rsv)
    s_rn = helper.slack((1, n), RESERVE_SLACKS[1], ["-"], "kW", w_rsv)
    short = cp.Variable(rows, nonneg=True, name="dr_shortfall_kwh")
    over = cp.Variable(n, nonneg=True, name="dr_over_cap_kw")
    net = imp - exp
    x = params["dr_e_c"] @ net
    helper.add_term("dr_penalty", params["dr_np_w"] @ short + params["dr_cap_w"] @ over)
    cons = [
        x <= params["dr_e_top"] + s_short,
        x >= params["dr_e_bot"] - s_over,
        short >= params["dr_np_g0"] + params["dr_np_g"] @ net,
        over >= net - params["dr_capx"],
        net <= params["dr_rsv_max"] + (s_rx[0, :] if isinstance(s_rx, cp.Variable) else 0.0),
        net >= params["dr_rsv_min"] - (s_rn[0, :] if isinstance(s_rn, cp.Variable) else 0.0),
    ]
    if isinstance(dev, cp.Variable):  # soft=False builds the hard problem: no tie-break
        d = dev[0, :]
        cons += [
            d >= net - params["dr_aim"] - params["dr_aim_off"],
            d >= params["dr_aim"] - net - params["dr_aim_off"],
        ]
    return cons


def update(
    params: dict[str, cp.Parameter], slacks: list[Slack], p: DispatchProblem, big: float
) -> None:
    """Refresh the rows' Parameters and the events their slacks are named after."""
    if "dr_e_c" not in params:
        return
    rows, n = params["dr_e_c"].shape
    r = len(p.dr_rows)
    big_e = big * n * p.dt_h  # "no bound", in kWh on the park's scale

    def pad(a: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((rows, *a.shape[1:]), fill)
        out[:r] = a
        return out

    c, bot, top = dr_rows.energy_rows(p)
    params["dr_e_c"].value = pad(c, 0.0)
    params["dr_e_bot"].value = pad(finite(bot, big_e), -big_e)
    params["dr_e_top"].value = pad(finite(top, big_e), big_e)
    g, g0, w = dr_rows.penalty_rows(p)
    params["dr_np_g"].value = pad(g, 0.0)
    params["dr_np_g0"].value = pad(g0, 0.0)
    params["dr_np_w"].value = pad(w, 0.0)
    cap, cw = dr_rows.cap_penalty(p)
    params["dr_capx"].value = finite(cap, big)
    params["dr_cap_w"].value = p.dt_h * cw
    rsv_max, rsv_min = dr_rows.reserve_limits(p)
    params["dr_rsv_max"].value = finite(rsv_max, big)
    params["dr_rsv_min"].value = finite(rsv_min, big)
    aim, on = dr_rows.aim_kw(p)
    params["dr_aim"].value = np.where(on, aim, 0.0)
    params["dr_aim_off"].value = np.where(on, 0.0, big)
    names = [row.event_id for row in p.dr_rows] + ["-"] * (rows - r)
    for s in slacks:
        if s.constraint in ENERGY_SLACKS:
            s.assets[:] = names


def corridor_relaxations(p: DispatchProblem, slack: Slack, dt_h: float) -> list[Relaxation]:
    """The corridor slack's relaxations, one per event that owns the relaxed intervals
    (``connection`` where no event does: a cap given without events)."""
    if slack.var is None or slack.var.value is None:
        return []
    v = np.asarray(slack.var.value, dtype=float).reshape(-1)
    owners = dr_rows.owner_ids(p)
    by: dict[str, list[int]] = {}
    for k in np.flatnonzero(v > TOL):
        by.setdefault(owners[int(k)] or "connection", []).append(int(k))
    return [
        Relaxation(slack.constraint, who, tuple(ks), float(v[ks].max()), "kW")
        for who, ks in by.items()
    ]

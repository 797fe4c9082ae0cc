"""Per-meter billing in the dispatch: each sub-meter's import, export and peak (pure cvxpy).

With ``DispatchProblem.per_meter_billing`` every meter ``m`` of ``problem.meters`` (a
partition of the buses) gets its own import and export, ``import_m - export_m`` = the net load
of its buses, priced at its own tariff, and its own peak with its own demand charge. These
terms replace the connection's energy and demand terms: no meter's PV offsets another's
import unless the physics of the connection does it for free (a kWh one meter exports is
paid at that meter's export price, a kWh another imports at its import price). The
connection's limits, DR rows and carbon term stay on the connection's total. The
connection's own import and export are then priced by carbon alone: without a carbon price
they may both be positive in a plan (their difference, the net, is all that the limits and
the results read). A meter gains nothing from importing and exporting at once: its export
is valued at min(export, import price).

Every number is a ``cp.Parameter`` (the model is rebuilt only when the meters' buses change:
:func:`structure`). :func:`meter_terms_cny` is the numpy yardstick of the same terms
(:func:`controllers.costs.evaluate` uses it).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from controllers.problem import DispatchProblem, MeterInput


def active(problem: DispatchProblem) -> bool:
    """True when the problem bills each meter on its own."""
    return bool(problem.per_meter_billing and problem.meters)


def structure(problem: DispatchProblem) -> tuple:
    """What of the meters is model structure: their names and buses (when billed per meter)."""
    if not active(problem):
        return ()
    return tuple((x.name, tuple(x.buses)) for x in problem.meters)


def incidence(problem: DispatchProblem) -> np.ndarray:
    """``(meters, buses)`` 0/1 matrix: which meter measures which bus. Raises ValueError
    naming the bus when the meters do not partition the problem's buses."""
    a = np.zeros((len(problem.meters), len(problem.buses)))
    for i, x in enumerate(problem.meters):
        for b in x.buses:
            if b not in problem.buses:
                raise ValueError(f"meter {x.name!r}: bus {b!r} is not a bus of the problem")
            a[i, problem.bus_index(b)] += 1.0
    counts = a.sum(axis=0)
    for j, b in enumerate(problem.buses):
        if counts[j] != 1:
            raise ValueError(
                f"bus {b!r} is measured by {int(counts[j])} meters; per-meter billing needs "
                "every bus in exactly one (the common meter takes the rest)"
            )
    return a


def effective_export_price(x: MeterInput) -> np.ndarray:
    """A meter's export valued at min(export, import price): one meter nets within an
    interval, as the connection does (:func:`controllers.problem.effective_export_price`)."""
    return np.minimum(
        np.asarray(x.price_export_cny_per_kwh, dtype=float),
        np.asarray(x.price_import_cny_per_kwh, dtype=float),
    )


def build(p: DispatchProblem, params: dict, bus_p: cp.Expression) -> tuple[list, dict]:
    """The meters' rows and their ``energy_import``, ``energy_export`` and ``demand_charge``
    terms (which replace the connection's), as cvxpy on ``bus_p`` (buses x n, kW)."""
    n, k = p.n, len(p.meters)
    params["meter_price_imp"] = cp.Parameter((k, n))  # CNY/kWh * dt
    params["meter_price_exp"] = cp.Parameter((k, n))
    params["meter_peak_margin"] = cp.Parameter((k, n), nonneg=True)
    params["meter_month_peak"] = cp.Parameter((k, 1), nonneg=True)
    params["meter_dc"] = cp.Parameter((k, 1), nonneg=True)  # CNY/kW for a rise of the peak
    params["meter_dc_base"] = cp.Parameter(nonneg=True)  # sum dc x month peak (DPP)
    imp = cp.Variable((k, n), nonneg=True, name="meter_import_kw")
    exp = cp.Variable((k, n), nonneg=True, name="meter_export_kw")
    peak = cp.Variable((k, 1), nonneg=True, name="meter_peak_import_kw")
    cons = [
        imp - exp == incidence(p) @ bus_p,
        peak @ np.ones((1, n)) >= imp + params["meter_peak_margin"],
        peak >= params["meter_month_peak"],
        peak <= params["peak_max"],
    ]
    terms = {
        "energy_import": cp.sum(cp.multiply(params["meter_price_imp"], imp)),
        "energy_export": -cp.sum(cp.multiply(params["meter_price_exp"], exp)),
        "demand_charge": cp.sum(cp.multiply(params["meter_dc"], peak)) - params["meter_dc_base"],
    }
    return cons, terms


def update(params: dict, p: DispatchProblem) -> None:
    """Set the meters' Parameters from ``p``'s values."""
    if "meter_price_imp" not in params:
        return
    dt = p.dt_h
    params["meter_price_imp"].value = dt * np.array(
        [np.asarray(x.price_import_cny_per_kwh, dtype=float) for x in p.meters]
    )
    params["meter_price_exp"].value = dt * np.array([effective_export_price(x) for x in p.meters])
    params["meter_peak_margin"].value = np.array([_margin(x, p.n) for x in p.meters])
    peaks = np.array([[max(x.month_peak_import_kw, 0.0)] for x in p.meters])
    dc = np.array([[max(x.demand_charge_cny_per_kw, 0.0)] for x in p.meters])
    params["meter_month_peak"].value = peaks
    params["meter_dc"].value = dc
    params["meter_dc_base"].value = float((dc * peaks).sum())


def _margin(x: MeterInput, n: int) -> np.ndarray:
    if x.peak_margin_kw is None:
        return np.zeros(n)
    return np.maximum(np.asarray(x.peak_margin_kw, dtype=float), 0.0)


def meter_net_kw(problem: DispatchProblem, bus_p_kw: dict[str, np.ndarray]) -> np.ndarray:
    """Each meter's net load (kW, ``(meters, n)``, + import) from per-bus loads."""
    zero = np.zeros(problem.n)
    return np.array(
        [sum((np.asarray(bus_p_kw.get(b, zero)) for b in x.buses), zero) for x in problem.meters]
    )


def meter_terms_cny(problem: DispatchProblem, bus_p_kw: dict[str, np.ndarray]) -> dict[str, float]:
    """The meters' ``energy_import``, ``energy_export`` and ``demand_charge`` (CNY) of a
    schedule's per-bus loads, in numpy: what :func:`build` prices, for the yardstick."""
    dt = problem.dt_h
    out = {"energy_import": 0.0, "energy_export": 0.0, "demand_charge": 0.0}
    for x, net in zip(problem.meters, meter_net_kw(problem, bus_p_kw), strict=True):
        imp, exp = np.maximum(net, 0.0), np.maximum(-net, 0.0)
        out["energy_import"] += float(dt * np.asarray(x.price_import_cny_per_kwh) @ imp)
        out["energy_export"] -= float(dt * effective_export_price(x) @ exp)
        base = max(x.month_peak_import_kw, 0.0)
        peak = max(float((imp + _margin(x, problem.n)).max(initial=0.0)), base)
        out["demand_charge"] += max(x.demand_charge_cny_per_kw, 0.0) * (peak - base)
    return out

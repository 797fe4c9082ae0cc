"""Rolling-origin backtest of forecasters on one measured series, and its metrics.

No leakage by construction: at every issue time the harness hands a forecaster *copies* of
the measurements strictly before that time (read-only arrays, a :class:`Series` ending at the
issue time) for ``fit`` and ``predict``; it never holds a reference to later data. The truth
is looked up only after the forecast is returned.

Metrics, per forecaster and lead-time bucket (:data:`forecasts.quantile_model.LEAD_EDGES_H`):
MAE and RMSE of P50 (kW), nMAE (MAE / ``norm_kw``), pinball loss averaged over P10/P50/P90
(kW), P10-P90 coverage, and MAE skill ``1 - MAE / MAE_reference`` against each reference.
Pure computation: arrays in, arrays and text out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forecasts.quantile_model import LEAD_EDGES_H, lead_bucket
from forecasts.types import Forecaster, Series
from vpp.park.model import Horizon


@dataclass(frozen=True)
class BacktestConfig:
    """Where the rolling origin starts and how it moves (all in steps of the series).

    ``first_issue``: position of the first issue time; ``issue_every``: steps between issue
    times; ``refit_every``: steps between refits (each refit sees all data before it, or the
    last ``train_window`` steps); ``recent_steps``: length of the history passed to predict.
    """

    horizon_steps: int = 96
    first_issue: int = 60 * 96
    issue_every: int = 4
    refit_every: int = 30 * 96
    recent_steps: int = 10 * 96
    train_window: int | None = None


@dataclass(frozen=True)
class BacktestResult:
    """Forecasts of each forecaster at each issue time, with the truth, all (issues, steps)."""

    issues: np.ndarray
    truth_kw: np.ndarray
    quantiles_kw: dict[str, np.ndarray]  # name -> (3, issues, steps): P10, P50, P90
    step_h: float


def _readonly(series: Series, lo: int, hi: int) -> Series:
    """A copy of positions ``lo..hi-1`` that nobody can write to."""
    h = series.horizon
    values = series.values_kw[lo:hi].copy()
    values.flags.writeable = False
    temp = None
    if series.temp_c is not None:
        temp = series.temp_c[lo:hi].copy()
        temp.flags.writeable = False
    return Series(Horizon(h.at(lo), h.step, hi - lo), values, temp)


def rolling_origin(
    series: Series,
    factories: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
) -> BacktestResult:
    """Run every forecaster (built by ``factories[name]()``) over rolling issue times.

    Parameters
    ----------
    series : the measured series (kW) on a regular grid.
    factories : name -> callable that returns an unfitted forecaster.
    config : issue times, refit period, history lengths.
    """
    h, n = series.horizon, config.horizon_steps
    last_issue = h.n - n
    if config.first_issue < 1 or config.first_issue > last_issue:
        raise ValueError(
            f"backtest: first issue {config.first_issue} outside 1..{last_issue} "
            f"for a series of {h.n} steps and a horizon of {n}"
        )
    issues = np.arange(config.first_issue, last_issue + 1, config.issue_every)
    out = {name: np.zeros((3, len(issues), n)) for name in factories}
    fitted: dict[str, Forecaster] = {}
    next_refit = config.first_issue
    for row, i0 in enumerate(issues):
        if i0 >= next_refit:
            lo = 0 if config.train_window is None else max(0, i0 - config.train_window)
            history = _readonly(series, lo, int(i0))
            fitted = {name: make().fit(history) for name, make in factories.items()}
            next_refit = i0 + config.refit_every
        recent = _readonly(series, max(0, int(i0) - config.recent_steps), int(i0))
        horizon = Horizon(h.at(int(i0)), h.step, n)
        for name, fc in fitted.items():
            q = fc.predict(horizon, recent)
            out[name][:, row] = (q.p10_kw, q.p50_kw, q.p90_kw)
    truth = np.stack([series.values_kw[i : i + n] for i in issues])
    return BacktestResult(issues, truth, out, h.dt_h)


def pinball_kw(truth: np.ndarray, pred: np.ndarray, q: float) -> np.ndarray:
    """Pinball (quantile) loss of ``pred`` for quantile ``q`` (kW), elementwise."""
    diff = truth - pred
    return np.maximum(q * diff, (q - 1.0) * diff)


@dataclass(frozen=True)
class MetricRow:
    forecaster: str
    bucket: str
    n: int
    mae_kw: float
    rmse_kw: float
    nmae: float
    pinball_kw: float
    coverage_frac: float
    skill: dict[str, float]


def metrics_by_lead(
    result: BacktestResult,
    norm_kw: float | None = None,
    mask: np.ndarray | None = None,
    references: Sequence[str] = (),
) -> list[MetricRow]:
    """Metrics per forecaster and lead bucket (plus an "all" bucket).

    Parameters
    ----------
    result : a :func:`rolling_origin` result.
    norm_kw : divisor of nMAE (kW); default the mean absolute truth of the evaluated points.
    mask : (issues, steps) booleans, points to evaluate (e.g. daylight for PV); default all
        points with a finite truth.
    references : forecasters to compute the MAE skill against.
    """
    truth = result.truth_kw
    ok = np.isfinite(truth) if mask is None else (mask & np.isfinite(truth))
    lead_h = np.arange(truth.shape[1]) * result.step_h
    buckets = np.broadcast_to(lead_bucket(lead_h), truth.shape)
    labels = _bucket_labels()
    norm = norm_kw if norm_kw else float(np.mean(np.abs(truth[ok]))) if ok.any() else 1.0
    selections = [(labels[b], ok & (buckets == b)) for b in np.unique(buckets[ok])]
    selections.append(("all", ok))
    mae_of = {
        (name, label): float(np.mean(np.abs(q[1][sel] - truth[sel])))
        for name, q in result.quantiles_kw.items()
        for label, sel in selections
    }
    rows = []
    for name, q in result.quantiles_kw.items():
        for label, sel in selections:
            t = truth[sel]
            err = q[1][sel] - t
            pin = np.mean([pinball_kw(t, q[k][sel], p).mean() for k, p in enumerate(QS)])
            cover = np.mean((t >= q[0][sel] - 1e-9) & (t <= q[2][sel] + 1e-9))
            mae = mae_of[(name, label)]
            skill = {
                r: 1.0 - mae / mae_of[(r, label)] if mae_of[(r, label)] > 0 else float("nan")
                for r in references
                if r != name
            }
            rows.append(
                MetricRow(
                    name,
                    label,
                    int(sel.sum()),
                    mae,
                    float(np.sqrt(np.mean(err**2))),
                    mae / norm,
                    float(pin),
                    float(cover),
                    skill,
                )
            )
    return rows


QS = (0.1, 0.5, 0.9)


def _bucket_labels() -> list[str]:
    edges = LEAD_EDGES_H
    return [
        f"{edges[i]:g}-{edges[i + 1]:g}h" if np.isfinite(edges[i + 1]) else f">{edges[i]:g}h"
        for i in range(len(edges) - 1)
    ]


def format_table(rows: Sequence[MetricRow], title: str = "") -> str:
    """A plain-text table of :func:`metrics_by_lead` rows."""
    refs = sorted({r for row in rows for r in row.skill})
    head = ["forecaster", "lead", "n", "MAE kW", "RMSE kW", "nMAE", "pinball", "P10-P90"]
    head += [f"skill vs {r}" for r in refs]
    lines = [title] if title else []
    body = []
    for row in rows:
        cells = [
            row.forecaster,
            row.bucket,
            str(row.n),
            f"{row.mae_kw:.3f}",
            f"{row.rmse_kw:.3f}",
            f"{row.nmae:.3f}",
            f"{row.pinball_kw:.3f}",
            f"{row.coverage_frac:.1%}",
        ]
        cells += [f"{row.skill[r]:+.1%}" if r in row.skill else "" for r in refs]
        body.append(cells)
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    for cells in [head, *body]:
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)

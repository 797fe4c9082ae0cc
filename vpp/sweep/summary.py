"""The sweep's summary: one self-contained HTML page (matplotlib PNGs inlined, no network).

A *variant* is a case's axis values but its seed: each box of a box plot is a variant's
spread across seeds. Figures: savings against the uncontrolled case of the same seed, date
and park variant (% of its bill) and peak reduction (kW); DR effectiveness (energy delivered
of requested, events effective); realised violations (network intervals and connection
breaches). Then the medians per variant and the failed cases with their errors.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.sim.report import _CSS, _png, _table
from vpp.sweep.results import AXIS_COLUMNS

VARIANT_AXES = tuple(c for c in AXIS_COLUMNS if c not in ("seed", "days"))
MEDIANS = (
    "total_cost_cny",
    "savings_cny",
    "savings_frac",
    "peak_import_kw",
    "peak_reduction_kw",
    "dr_effective_frac",
    "grid_violation_steps",
    "connection_import_breach_steps",
    "ev_unmet_kwh",
    "co2_t",
)


def variant_labels(df: pd.DataFrame) -> pd.Series:
    """``mpc battery_scale=2``: the controller and every other axis that varies, but seed."""
    varying = [c for c in VARIANT_AXES if c != "controller" and df[c].nunique(dropna=False) > 1]

    def label(row) -> str:
        return " ".join([str(row["controller"]), *(f"{c}={row[c]}" for c in varying)])

    if df.empty:
        return pd.Series([], dtype=str)
    return df.apply(label, axis=1)


def _boxes(ax, groups: dict[str, np.ndarray], ylabel: str, title: str) -> None:
    names = list(groups)
    data = [groups[n] for n in names]
    ax.boxplot(data, showmeans=True)
    for i, d in enumerate(data, start=1):  # every seed as a point beside its box
        ax.plot(np.full(len(d), i) + 0.18, d, "k.", ms=3, alpha=0.6)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)


def _groups(df: pd.DataFrame, col: str, scale: float = 1.0) -> dict[str, np.ndarray]:
    out = {}
    for name, g in df.groupby("variant", sort=True):
        v = g[col].dropna().to_numpy(dtype=float) * scale
        if v.size:
            out[name] = v
    return out


def figures(df: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df["status"] == "ok"].copy()
    ok["variant"] = variant_labels(ok)
    ctrl = ok[ok["controller"] != "uncontrolled"]
    figs = []
    n = max(ctrl["variant"].nunique(), 1)
    width = min(max(6.0, 0.7 * n + 3), 16.0)
    if not ctrl.empty:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(2 * width if n > 6 else 11, 4))
        _boxes(a1, _groups(ctrl, "savings_frac", 100.0), "% of the uncontrolled bill",
               "Savings against uncontrolled (same seed, date, park), across seeds")  # fmt: skip
        _boxes(a2, _groups(ctrl, "peak_reduction_kw"), "kW",
               "Peak import reduction against uncontrolled, across seeds")  # fmt: skip
        figs.append(_png(fig))
    dr = ok[ok["dr_events"].fillna(0) > 0].copy()
    if not dr.empty:
        dr["dr_delivered_frac"] = dr["dr_delivered_kwh"] / dr["dr_requested_kwh"].replace(0, np.nan)
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        _boxes(a1, _groups(dr, "dr_delivered_frac", 100.0), "% of requested",
               "DR energy delivered of requested, across seeds")  # fmt: skip
        _boxes(a2, _groups(dr, "dr_effective_frac", 100.0), "% of events",
               "DR events effective, across seeds")  # fmt: skip
        figs.append(_png(fig))
    if not ok.empty:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        _boxes(a1, _groups(ok, "grid_violation_steps"), "intervals",
               "Realised network violations (AC flow), across seeds")  # fmt: skip
        _boxes(a2, _groups(ok, "connection_import_breach_steps"), "intervals",
               "Realised connection import breaches, across seeds")  # fmt: skip
        figs.append(_png(fig))
    return figs


def medians(df: pd.DataFrame) -> list[dict]:
    """Per variant: cases, seeds, and the median of each figure of :data:`MEDIANS`."""
    ok = df[df["status"] == "ok"].copy()
    if ok.empty:
        return []
    ok["variant"] = variant_labels(ok)
    rows = []
    for name, g in ok.groupby("variant", sort=True):
        row = {"variant": name, "cases": len(g), "seeds": g["seed"].nunique()}
        row.update({c: _median(g[c]) for c in MEDIANS})
        rows.append(row)
    return rows


def _median(s: pd.Series) -> float | None:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.median()) if len(s) else None


def render(df: pd.DataFrame, title: str, description: str) -> str:
    failed = df[df["status"] != "ok"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>park-vpp sweep</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(description)}</p>" if description else "",
        f"<p>{len(df)} cases: {len(df) - len(failed)} ok, {len(failed)} failed. Every figure "
        "is what the simulated park did (realised); savings and peak reduction are against "
        "the uncontrolled case of the same seed, date, park variant and truth. A box is one "
        "variant (every axis but the seed) across seeds; dots are the seeds.</p>",
        "<h2>Figures</h2>",
        *figures(df),
        "<h2>Medians per variant</h2>",
        _table(medians(df)) or "<p>No case finished.</p>",
    ]
    if not failed.empty:
        rows = [
            {"key": r["key"], "controller": r["controller"], "seed": r["seed"],
             "error": r["error"]}
            for _, r in failed.iterrows()
        ]  # fmt: skip
        parts += ["<h2>Failed cases</h2>", _table(rows)]
    parts.append(
        f"<p>Table: results.parquet and results.csv ({len(df.columns)} columns). "
        f"Per-case files: cases/KEY.json.</p></body></html>"
    )
    return "\n".join(p for p in parts if p)


def write_summary(df: pd.DataFrame, out: Path, title: str, description: str = "") -> Path:
    from vpp.sweep.runner import write_atomic

    path = Path(out) / "summary.html"
    write_atomic(path, render(df, title, description))
    return path

"""The table of a sweep: one row per case, rebuilt from the per-case result files.

Columns: ``key``, ``status``, the case's axis values (``controller``, ``seed``, ``start``,
``battery_scale``, ``pv_scale``, ``tariff``, ``dr``, ``forecast``, ``load_noise_frac``,
``risk_frac``, ``days``), every realised KPI of ``kpis.json``
(:data:`vpp.accounting.kpis.KPI_NAMES`), then the figures against the case's reference, the
uncontrolled case of the same seed, date, park variant and truth (``reference_key``):
``savings_cny`` (its total cost minus the case's), ``savings_frac`` (of its total cost),
``peak_reduction_kw``, and ``dr_effective_frac`` (effective events of those settled), and
the run's own ``compute_s``, ``rss_peak_mb``, ``worker`` and ``error``.

Written as ``results.parquet`` and ``results.csv`` (each through a temporary file and a
rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from vpp.accounting.kpis import KPI_NAMES
from vpp.sweep.runner import read_case
from vpp.sweep.spec import Sweep

AXIS_COLUMNS = (
    "controller",
    "seed",
    "start",
    "battery_scale",
    "pv_scale",
    "tariff",
    "dr",
    "forecast",
    "load_noise_frac",
    "risk_frac",
    "days",
)
DERIVED = ("savings_cny", "savings_frac", "peak_reduction_kw", "dr_effective_frac")
RUN_COLUMNS = ("compute_s", "rss_peak_mb", "worker", "error")


def _row(doc: dict) -> dict:
    row = {"key": doc["key"], "status": doc["status"], **doc["axes"]}
    kp = doc.get("kpis") or {}
    row.update({k: kp.get(k) for k in KPI_NAMES})
    row["reference_key"] = doc.get("reference_key")
    row.update({c: doc.get(c) for c in RUN_COLUMNS})
    return row


def _frac(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _derived(row: dict, ref: dict | None) -> dict:
    out = dict.fromkeys(DERIVED)
    n = row.get("dr_events") or 0
    eff = row.get("dr_events_effective")
    out["dr_effective_frac"] = eff / n if n and eff is not None else None
    if ref is None or row["status"] != "ok" or ref["status"] != "ok":
        return out
    if row["controller"] == "uncontrolled":
        ref = row
    saving = ref["total_cost_cny"] - row["total_cost_cny"]
    out["savings_cny"] = saving
    out["savings_frac"] = _frac(saving, ref["total_cost_cny"])
    out["peak_reduction_kw"] = ref["peak_import_kw"] - row["peak_import_kw"]
    return out


def frame(sweep: Sweep, out: Path) -> pd.DataFrame:
    """The table of ``sweep``'s cases from ``out/cases`` (a case not run yet: no row)."""
    rows = {}
    for r in sweep.cases:
        doc = read_case(out, r.key)
        if doc is not None:
            rows[r.key] = _row(doc)
    for row in rows.values():
        ref = rows.get(row["reference_key"]) if row["reference_key"] else None
        if row["controller"] == "uncontrolled":
            ref = row
        row.update(_derived(row, ref))
    cols = ["key", "status", *AXIS_COLUMNS, *KPI_NAMES, "reference_key", *DERIVED, *RUN_COLUMNS]
    df = pd.DataFrame(list(rows.values()), columns=cols)
    for c in [*KPI_NAMES, *DERIVED, "compute_s", "rss_peak_mb"]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _replace(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_table(sweep: Sweep, out: Path) -> pd.DataFrame:
    """Write ``results.parquet`` and ``results.csv`` in ``out``; return the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = frame(sweep, out)
    _replace(out / "results.parquet", lambda p: df.to_parquet(p, index=False))
    _replace(out / "results.csv", lambda p: df.to_csv(p, index=False, float_format="%.6g"))
    return df

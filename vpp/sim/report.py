"""Outputs of a simulation: ``kpis.json``, ``timeseries.csv``, ``sessions.csv`` (EV sessions'
realised kW per interval) and a self-contained ``report.html`` (matplotlib figures inlined
as base64 PNG; no CDN, opens offline)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from vpp.accounting import tenants
from vpp.accounting.kpis import KPI_NAMES

TS_COLUMNS = (
    "import_kw",
    "export_kw",
    "net_kw",
    "pv_available_kw",
    "pv_used_kw",
    "pv_curtailed_kw",
    "battery_kw",
    "battery_e_kwh",
    "battery_soc_frac",
    "ev_kw",
    "ev_to_car_kw",
    "flex_kw",
    "flex_baseline_kw",
    "shiftable_kw",
    "base_kw",
    "dr_cap_kw",
    "dr_floor_kw",
    "dr_baseline_kw",
    "price_cny_per_kwh",
    "export_price_cny_per_kwh",
    "ef_kg_per_kwh",
    "co2_kg",
    "energy_cost_cny",
    "cycle_ms",
    "fallback",
)
# Present when the park has a network: the AC power flow of what each bus actually drew.
GRID_COLUMNS = (
    "trafo_loading_max_percent",
    "line_loading_max_percent",
    "v_min_pu",
    "v_max_pu",
)


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def timeseries_frame(result) -> pd.DataFrame:
    idx = pd.DatetimeIndex(result.horizon.times(), name="time")
    cols = [*TS_COLUMNS, *(c for c in GRID_COLUMNS if c in result.series)]
    cols += [c for c in ("unserved_kw", "pv_spilled_kw") if c in result.series]
    return pd.DataFrame({c: result.series[c] for c in cols}, index=idx)


def write_run(result, out: Path, baseline=None) -> None:
    """Write ``kpis.json``, ``timeseries.csv``, ``sessions.csv`` (with EV sessions: the
    realised kW of each session per interval) and ``report.html`` for one run."""
    out.mkdir(parents=True, exist_ok=True)
    doc = dict(result.kpis)
    if baseline is not None:
        doc["baseline"] = {k: baseline.kpis.get(k) for k in KPI_NAMES}
        doc["baseline"]["controller"] = baseline.controller
    (out / "kpis.json").write_text(json.dumps(_clean(doc), indent=1), encoding="utf-8")
    timeseries_frame(result).to_csv(out / "timeseries.csv", float_format="%.4f")
    rows = getattr(result, "session_power", None)
    if rows:
        frame = pd.DataFrame(rows).set_index("time")
        frame.to_csv(out / "sessions.csv", float_format="%.4f")
    buses = getattr(result, "bus_series_kw", None)
    if buses:  # a park with tenant meters: what each bus drew and generated (vpp carbon report)
        idx = pd.DatetimeIndex(result.horizon.times(), name="time")
        pd.DataFrame(buses, index=idx).to_csv(out / "buses.csv", float_format="%.4f")
    runs = [result] + ([baseline] if baseline is not None else [])
    (out / "report.html").write_text(render(result.site.name, runs), encoding="utf-8")


def comparison(runs: list) -> list[dict]:
    """Savings and changes of each run against the uncontrolled one (or the last run).

    All figures are the realised park's; ``plan_grid_violation_steps`` is the plan's.
    """
    ref = next((r for r in runs if r.controller == "uncontrolled"), runs[-1])
    k0 = ref.kpis
    rows = []
    for r in runs:
        k = r.kpis
        saving = k0["total_cost_cny"] - k["total_cost_cny"]
        rows.append(
            {
                "controller": r.controller,
                "total_cost_cny": k["total_cost_cny"],
                "savings_cny": saving,
                "savings_frac": _frac(saving, k0["total_cost_cny"]),
                "energy_cost_cny": k["energy_cost_cny"],
                "demand_charge_cny": k["demand_charge_cny"],
                "stored_energy_cost_cny": k["stored_energy_cost_cny"],
                "dr_compensation_cny": k["dr_compensation_cny"],
                "peak_import_kw": k["peak_import_kw"],
                "peak_reduction_kw": k0["peak_import_kw"] - k["peak_import_kw"],
                "co2_t": k["co2_t"],
                "co2_reduction_t": k0["co2_t"] - k["co2_t"],
                "dr_effective": f"{k['dr_events_effective']} of {k['dr_events']}",
                "ev_unmet_kwh": k["ev_unmet_kwh"],
                "ev_service_frac": _frac(k["ev_delivered_kwh"], k["ev_requested_kwh"]),
                "grid_violation_steps": k["grid_violation_steps"],
                "plan_grid_violation_steps": k["plan_grid_violation_steps"],
                "unserved_kwh": k["unserved_kwh"],
                "solver_failures": k["solver_failures"],
                "cycle_time_p50_ms": k["cycle_time_p50_ms"],
            }
        )
    return rows


def cost_table(runs: list) -> list[dict]:
    """The bill of each run, line by line (CNY; stored energy also in kWh)."""
    rows = []
    for r in runs:
        k = r.kpis
        months = k["demand_by_month"]
        share = ", ".join(f"{m['month']} {100 * m['covered_frac']:.1f} %" for m in months)
        rows.append(
            {
                "controller": r.controller,
                "energy_cny": k["energy_cost_cny"],
                "demand_charge_cny": k["demand_charge_cny"],
                "demand_months_billed": share if r.demand_prorate else f"{share} (not pro-rated)",
                "dr_compensation_cny": k["dr_compensation_cny"],
                "stored_energy_change_kwh": k["stored_energy"]["change_kwh"],
                "stored_energy_cost_cny": k["stored_energy_cost_cny"],
                "total_cny": k["total_cost_cny"],
            }
        )
    return rows


def per_run_rows(runs: list, key: str) -> list[dict]:
    """The rows of a per-run KPI list (``grid_violations``: realised network violations by
    element; ``dr_per_event``: DR settlements), each led by its run's controller."""
    return [{"controller": r.controller, **row} for r in runs for row in r.kpis[key]]


def _frac(a: float, b: float) -> float | None:
    return a / b if b else None


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) < 5e-4:  # no "-0.000" for a rounding residue
            v = 0.0
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))  # rows may differ (cap-only DR)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return (
        '<img alt="figure" src="data:image/png;base64,'
        + base64.b64encode(buf.getvalue()).decode("ascii")
        + '">'
    )


def _figures(runs: list) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = runs[0]
    t = pd.DatetimeIndex(main.horizon.times()).tz_localize(None)
    site = main.site
    figs = []
    fig, ax = plt.subplots(figsize=(11, 3.6))
    for r in runs:
        ax.plot(t, r.series["import_kw"], lw=0.9, label=f"import, {r.controller}")
    lim = min(site.connection.import_max_kw, site.connection.transformer_p_max_kw)
    ax.axhline(lim, color="red", ls="--", lw=1, label="connection limit")
    cap = main.series["dr_cap_kw"]
    ax.plot(t, np.where(np.isfinite(cap), cap, np.nan), color="purple", lw=1.5, label="DR cap")
    base = main.series["dr_baseline_kw"]
    if np.isfinite(base).any():
        ax.plot(t, base, color="grey", ls=":", lw=1, label="DR baseline (gbt37016_5of10)")
    for e in main.events:
        for w in e.windows:
            ax.axvspan(
                pd.Timestamp(w.start).tz_convert(site.location.tz).tz_localize(None),
                pd.Timestamp(w.end).tz_convert(site.location.tz).tz_localize(None),
                color="orange",
                alpha=0.25,
            )
    ax.set_ylabel("kW")
    ax.set_title("Park import against the limits (DR windows shaded)")
    ax.legend(loc="upper right", fontsize=8)
    figs.append(_png(fig))
    fig, ax = plt.subplots(figsize=(11, 2.8))
    for r in runs:
        ax.plot(t, 100 * r.series["battery_soc_frac"], lw=1, label=r.controller)
    ax.set_ylabel("%")
    ax.set_title("Battery state of charge (all batteries)")
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    fig, ax = plt.subplots(figsize=(11, 2.8))
    for r in runs:
        x, got, asked = ev_cumulative(r)
        line = ax.step(x, got, where="post", lw=1, label=f"delivered, {r.controller}")
        ax.step(x, asked, where="post", lw=0.8, ls=":", color=line[0].get_color())
    ax.set_ylabel("kWh")
    ax.set_title(
        "EV energy delivered (solid) and requested (dotted), cumulative at departure: the "
        "KPI's sessions (arrived and departed within the run)"
    )
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.2))
    for r in runs:
        a1.plot(t, np.cumsum(r.series["energy_cost_cny"]) / 1000, lw=1, label=r.controller)
        a2.plot(t, np.cumsum(r.series["co2_kg"]) / 1000, lw=1, label=r.controller)
    a1.set_title("Energy cost, cumulative (kCNY)")
    a2.set_title("CO2, cumulative (t)")
    a1.legend(fontsize=8)
    for a in (a1, a2):
        a.tick_params(axis="x", labelrotation=30)
    figs.append(_png(fig))
    return figs


_CSS = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:1240px;padding:0 1em}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
    "text-align:right;white-space:nowrap}th{background:#eee}img{max-width:100%}"
)


def ev_cumulative(result) -> tuple[list, np.ndarray, np.ndarray]:
    """Delivered and requested energy of the KPI's EV sessions, cumulative at departure."""
    run = result.horizon
    done = sorted((x for x in result.sessions if x.arrival >= run.start), key=lambda x: x.departure)
    t0 = pd.Timestamp(run.start).tz_convert(result.site.location.tz).tz_localize(None)
    x = [t0] + [
        pd.Timestamp(s.departure).tz_convert(result.site.location.tz).tz_localize(None)
        for s in done
    ]
    got = np.cumsum([0.0] + [min(s.delivered_kwh, s.requested_kwh) for s in done])
    asked = np.cumsum([0.0] + [s.requested_kwh for s in done])
    return x, got, asked


GIVE_WAY_TABLES = (
    ("ev_sessions_left_short", "EV sessions that left short"),
    ("shiftable_windows_short", "Shiftable windows not completed"),
    ("curtailed_by_load", "Curtailed energy, by load"),
)


def _give_way(runs: list) -> list[str]:
    """The section on who gave way (:mod:`vpp.accounting.shortfalls`): realised amounts,
    the plans' reasons."""
    out = [
        "<h2>Who gave way (realised)</h2>",
        "<p>Amounts are what the park did; <i>why</i> is what the plans said while the asset "
        "was there (the limit at its bound where it was short), or that full power could not "
        "deliver it.</p>",
    ]
    for key, title in GIVE_WAY_TABLES:
        rows = per_run_rows(runs, key)
        body = _table(rows) if rows else "<p>None.</p>"
        out += [f"<h3>{html.escape(title)}</h3>", body]
    return out


def _tenants(runs: list) -> list[str]:
    """Per tenant sub-meter, each run's realised accounts (vpp.accounting.tenants)."""
    docs = [(r.controller, getattr(r, "tenants", None)) for r in runs]
    docs = [(c, d) for c, d in docs if d]
    if not docs:
        return []
    out = ["<h2>Tenants (sub-meters, realised)</h2>"]
    for controller, doc in docs:
        rows = [{"controller": controller, **row} for row in tenants.tenant_rows(doc)]
        out += [f"<p>{html.escape(tenants.summary_line(doc))}.</p>", _table(rows)]
    return out


def render(site_name: str, runs: list) -> str:
    """One self-contained HTML page for one or more runs of the same days."""
    main = runs[0]
    kp = [{"kpi": k, **{r.controller: r.kpis.get(k) for r in runs}} for k in KPI_NAMES]
    notes = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in main.kpis["notes"].items()
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>park-vpp simulation</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(site_name)}</h1>",
        f"<p>{main.horizon.start:%Y-%m-%d %H:%M %Z}, {main.horizon.n} intervals of "
        f"{main.horizon.step.total_seconds() / 60:.0f} min; forecasts: "
        f"{html.escape(main.forecast)}; seed {main.seed}.</p>",
    ]
    parts.append(
        "<p>Every figure is what the simulated park did; a name starting with "
        "<code>plan_</code> is what the dispatch intended.</p>"
    )
    if len(runs) > 1:
        parts += ["<h2>Comparison</h2>", _table(comparison(runs))]
    parts += ["<h2>Cost</h2>", _table(cost_table(runs))]
    viol = per_run_rows(runs, "grid_violations")
    parts += ["<h2>Network violations (realised, AC power flow)</h2>"]
    if not main.realised_grid.checked:
        parts.append(f"<p>{html.escape(main.realised_grid.note)}</p>")
    else:
        parts.append(_table(viol) if viol else "<p>None in any interval.</p>")
    parts += _tenants(runs)
    dr = per_run_rows(runs, "dr_per_event")
    if dr:
        parts += ["<h2>Demand response, per event</h2>", _table(dr)]
    parts += _give_way(runs)
    parts += ["<h2>Figures</h2>", *_figures(runs), "<h2>KPIs</h2>", _table(kp)]
    parts += [f"<h2>Notes</h2><ul>{notes}</ul>", "</body></html>"]
    return "\n".join(parts)

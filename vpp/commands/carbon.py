"""``vpp carbon report``: CO2, standard coal and energy intensity of a period, against the
targets (0.4 tce per 10,000 CNY; CO2 intensity down 4 % a year), and what the VPP changed.

Data: ``--data DIR`` is the output of ``vpp simulate`` or ``vpp compare`` (timeseries.csv of
each run). The park without the VPP ("no_vpp") is always computed from the measured profiles:
loads - PV, EVs charging on arrival, shiftable loads at their window's opening. "Last year" is
the same period 52 weeks earlier (same weekdays), without the VPP.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp import carbon
from vpp.carbon_factors import emission_factor_kg_per_kwh
from vpp.model import Horizon, Site


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("carbon", help="carbon and energy accounting")
    inner = p.add_subparsers(dest="carbon_command", metavar="SUBCOMMAND", required=True)
    r = inner.add_parser(
        "report",
        help="CO2, tce and intensity of a period against the targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--config", required=True, type=Path, help="park YAML")
    r.add_argument("--from", dest="date_from", required=True, help="first day YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", required=True, help="last day YYYY-MM-DD (inclusive)")
    r.add_argument("--data", type=Path, help="a vpp simulate / compare output directory")
    r.add_argument("--json", type=Path, help="also write the figures as JSON")
    r.set_defaults(func=run)


def _day(text: str, flag: str) -> date:
    from vpp.cli import UserError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag}: not a date: {text!r} (YYYY-MM-DD)") from None


def no_vpp_series(site: Site, first: date, last: date, seed: int = 0) -> dict[str, np.ndarray]:
    """Import, export and PV used (kW per interval) of the park without the VPP: the measured
    profiles, EVs (seeded sessions) charging at once, shiftable loads at their window's start."""
    from vpp.drivers.simulated import SimOptions, SimulatedPark
    from vpp.forecasting import asset_names

    tz = ZoneInfo(site.location.tz)
    step = timedelta(minutes=site.dispatch.step_minutes)
    start = datetime.combine(first, time(0), tzinfo=tz)
    n = round((datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz) - start) / step)
    park = SimulatedPark(site, options=SimOptions(load_noise_frac=0.0))
    h = Horizon(start, step, n)
    truth = park.truth(h)
    from vpp.simulate import uncontrolled_flex_kw

    pv_names, loads = asset_names(site)
    load = sum(truth[x] for x in loads) + uncontrolled_flex_kw(site, h, seed)
    pv = sum(truth[x] for x in pv_names)
    net = load - pv
    return {
        "horizon": h,
        "import_kw": np.maximum(net, 0.0),
        "export_kw": np.maximum(-net, 0.0),
        "pv_used_kw": np.minimum(pv, load),
    }


def _from_data(site: Site, data: Path, first: date, last: date) -> dict[str, dict]:
    from vpp.cli import UserError

    dirs = (
        [data]
        if (data / "timeseries.csv").exists()
        else sorted(d for d in data.iterdir() if (d / "timeseries.csv").exists())
    )
    if not dirs:
        raise UserError(f"--data: no timeseries.csv in {data} or its subdirectories")
    tz = site.location.tz
    out = {}
    for d in dirs:
        df = pd.read_csv(d / "timeseries.csv", index_col="time", parse_dates=["time"])
        idx = pd.DatetimeIndex(df.index).tz_convert(tz)
        keep = (idx.date >= first) & (idx.date <= last)
        if not keep.any():
            raise UserError(f"{d}/timeseries.csv: no data between {first} and {last}")
        df = df[keep]
        expected = round((last - first).days + 1) * 1440 // site.dispatch.step_minutes
        if len(df) != expected:
            raise UserError(
                f"{d}/timeseries.csv covers {len(df)} of the {expected} intervals from {first} "
                f"to {last}; choose --from/--to inside the simulated days"
            )
        name = json.loads((d / "kpis.json").read_text())["run"]["controller"]
        out[name] = {
            "import_kw": df["import_kw"].to_numpy(),
            "export_kw": df["export_kw"].to_numpy(),
            "pv_used_kw": df["pv_used_kw"].to_numpy(),
            "ef_kg_per_kwh": df["ef_kg_per_kwh"].to_numpy(),
            "days": int(keep.sum()) * site.dispatch.step_minutes / 1440.0,
        }
    return out


def report(site: Site, first: date, last: date, data: Path | None) -> dict:
    """The carbon report's figures (see the module docstring)."""
    dt = site.dispatch.step_minutes / 60.0
    f = site.carbon.energy_factors
    va = site.value_added_10k_cny_per_year

    def acc(s: dict, ef: np.ndarray) -> carbon.Accounts:
        return carbon.accounts(s["import_kw"], s["export_kw"], s["pv_used_kw"], ef, dt, f, va)

    base = no_vpp_series(site, first, last)
    ef = emission_factor_kg_per_kwh(site.carbon, base["horizon"])
    runs = {"no_vpp": acc(base, ef)}
    ly_first, ly_last = _year_before(first), _year_before(last)
    last_year = no_vpp_series(site, ly_first, ly_last)
    prev = acc(last_year, emission_factor_kg_per_kwh(site.carbon, last_year["horizon"]))
    if data is not None:
        for name, s in _from_data(site, data, first, last).items():
            runs[name] = acc(s, s["ef_kg_per_kwh"])
    out = {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "factors": {
            "ef_kg_per_kwh": site.carbon.emission_factor.ef_kg_per_kwh,
            "ef_year": site.carbon.emission_factor.year,
            "ef_region": site.carbon.emission_factor.region,
            "ef_source": site.carbon.emission_factor.source,
            "hourly": site.carbon.emission_factor.hourly_ef_kg_per_kwh is not None,
            "equivalent_kgce_per_kwh": f.equivalent_kgce_per_kwh,
            "equal_value_kgce_per_kwh": f.equal_value_kgce_per_kwh,
            "energy_source": f.source,
        },
        "targets": {
            "intensity_tce_per_10k_cny": carbon.INTENSITY_TARGET_TCE_PER_10K_CNY,
            "co2_intensity_yoy_reduction_frac": carbon.YOY_REDUCTION_TARGET_FRAC,
        },
        "last_year_no_vpp": prev.to_dict(),
        "runs": {},
    }
    for name, a in runs.items():
        row = a.to_dict()
        if a.co2_t_per_10k_cny is not None and prev.co2_t_per_10k_cny:
            row["co2_intensity_yoy_change_frac"] = carbon.yoy_change_frac(
                a.co2_t_per_10k_cny, prev.co2_t_per_10k_cny
            )
        row["vs_no_vpp_co2_t"] = a.co2_t - runs["no_vpp"].co2_t
        row["vs_no_vpp_tce_equivalent"] = a.tce_equivalent - runs["no_vpp"].tce_equivalent
        out["runs"][name] = row
    return out


def _year_before(d: date) -> date:
    """52 weeks earlier: the same weekday, so workdays meet workdays."""
    return d - timedelta(weeks=52)


def run(args: argparse.Namespace) -> int:
    from vpp.cli import UserError
    from vpp.config import ConfigError, load_site

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    first, last = _day(args.date_from, "--from"), _day(args.date_to, "--to")
    if last < first:
        raise UserError("--to: must not be before --from")
    doc = report(site, first, last, args.data)
    print(text(site, doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return 0


def text(site: Site, doc: dict) -> str:
    fa, tg = doc["factors"], doc["targets"]
    lines = [
        f"carbon report: {site.name}, {doc['period']['from']} .. {doc['period']['to']}",
        f"grid factor {fa['ef_kg_per_kwh']} kgCO2/kWh ({fa['ef_region']} {fa['ef_year']}: "
        f"{fa['ef_source']}){', hourly series' if fa['hourly'] else ''}",
        f"standard coal: {fa['equivalent_kgce_per_kwh']} kgce/kWh (equivalent value), "
        f"{fa['equal_value_kgce_per_kwh']} kgce/kWh (equal value; {fa['energy_source']})",
        "",
        f"{'run':<14}{'import MWh':>12}{'CO2 t':>10}{'tce eqv':>10}{'tce eq-val':>11}"
        f"{'tce/10k CNY':>12}{'CO2 yoy':>9}{'dCO2 t':>9}",
    ]
    for name, r in doc["runs"].items():
        inten = r["intensity_tce_per_10k_cny"]
        yoy = r.get("co2_intensity_yoy_change_frac")
        lines.append(
            f"{name:<14}{r['import_kwh'] / 1000:12,.1f}{r['co2_t']:10,.1f}"
            f"{r['tce_equivalent']:10,.1f}{r['tce_equal_value']:11,.1f}"
            f"{(f'{inten:.4f}' if inten is not None else '-'):>12}"
            f"{(f'{100 * yoy:+.1f}%' if yoy is not None else '-'):>9}"
            f"{r['vs_no_vpp_co2_t']:+9.2f}"
        )
    lines += [
        "",
        f"targets: intensity <= {tg['intensity_tce_per_10k_cny']} tce per 10,000 CNY "
        f"(equivalent value, pro rata of the year's value added); CO2 per value added down "
        f"{100 * tg['co2_intensity_yoy_reduction_frac']:.0f} % a year (last year = same "
        "period 52 weeks earlier, no VPP)",
    ]
    return "\n".join(lines)

"""``vpp carbon report``: CO2, standard coal and energy intensity of a period, against the
targets (0.4 tce per 10,000 CNY; CO2 intensity down 4 % a year), and what the VPP changed.

Where the figures come from (``--source``):

stored (the default without ``--data``)
    The service's database (``VPP_DATABASE_URL``, default sqlite:///var/vpp.sqlite3, the one
    ``vpp run`` writes): the park meter's readings, the PV arrays' (a PEDF building's PV,
    not metered apart, from the decision-time forecast), and for the park without the VPP
    the metered power of the batteries, EV chargers and shiftable loads replaced by their
    behaviour without the VPP (no battery, cars charging on arrival from the stored
    sessions, shiftable loads at their window's opening). A date the park meter does not
    cover (at least 95 % of its intervals) stops the report with the missing dates named:
    a carbon figure is never filled with simulated days. Short gaps are interpolated and
    counted.
simulated (implied by ``--data DIR``)
    ``--data DIR``: the output of ``vpp simulate`` or ``vpp compare`` (timeseries.csv of
    each run). The park without the VPP ("no_vpp") is computed from the measured profiles:
    loads - PV, EVs charging on arrival, shiftable loads at their window's opening. Without
    ``--data`` only that no-VPP park is reported.

"Last year" is the same period 52 weeks earlier (same weekdays): the stored meter when the
database covers it, else the park without the VPP from the profiles; the report says which.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vpp.accounting import carbon
from vpp.commands import day_checks
from vpp.park.carbon_factors import factor_label, series_ef_kg_per_kwh
from vpp.park.model import Horizon, Site
from vpp.park.series import Cover, IntervalSeries
from vpp.store.metered import MeteredPeriod


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
    r.add_argument(
        "--source",
        choices=["stored", "simulated"],
        default=None,
        help="stored: the service's database (VPP_DATABASE_URL); simulated: the profiles and "
        "--data (default: simulated with --data, else stored)",
    )
    r.add_argument("--data", type=Path, help="a vpp simulate / compare output directory")
    r.add_argument("--json", type=Path, help="also write the figures as JSON")
    day_checks.add_flags(r, tariff=False)  # prices nothing; the no-VPP park needs the calendar
    r.set_defaults(func=run)


def _day(text: str, flag: str) -> date:
    from vpp.errors import UserError

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag}: not a date: {text!r} (YYYY-MM-DD)") from None


def no_vpp_series(site: Site, first: date, last: date, seed: int = 0) -> dict[str, np.ndarray]:
    """Import, export and PV used (kW per interval) of the park without the VPP: the measured
    profiles, EVs (seeded sessions) charging at once, shiftable loads at their window's start."""
    from vpp.plan.history_forecasters import asset_names
    from vpp.sim.simulated_park import SimOptions, SimulatedPark

    tz = ZoneInfo(site.location.tz)
    step = timedelta(minutes=site.dispatch.step_minutes)
    start = datetime.combine(first, time(0), tzinfo=tz)
    n = round((datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz) - start) / step)
    park = SimulatedPark(site, options=SimOptions(load_noise_frac=0.0))
    h = Horizon(start, step, n)
    truth = park.truth(h)
    from vpp.accounting.counterfactual import uncontrolled_flex_kw

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


def tenant_accounts(
    site: Site, first: date, last: date, data: Path | None = None, seed: int = 0
) -> dict[str, dict]:
    """Per tenant sub-meter, the accounts of the park without the VPP (``no_vpp``, from the
    profiles, as :func:`no_vpp_series`) and of each run in ``data`` that wrote ``buses.csv``
    (what each bus drew, realised), against it (:mod:`vpp.accounting.tenants`)."""
    from vpp.accounting import tenants
    from vpp.sim.simulated_park import SimOptions, SimulatedPark

    tz = ZoneInfo(site.location.tz)
    step = timedelta(minutes=site.dispatch.step_minutes)
    start = datetime.combine(first, time(0), tzinfo=tz)
    n = round((datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz) - start) / step)
    h = Horizon(start, step, n)
    truth = SimulatedPark(site, options=SimOptions(load_noise_frac=0.0)).truth(h)
    base = tenants.no_vpp_bus_kw(site, h, truth, seed=seed)
    pv_kw = {x.name: -np.minimum(truth[x.name], x.inverter_kw) for x in site.assets.pv_arrays}
    pv_kw |= {
        pe.pv.name: -np.minimum(truth[pe.pv.name], pe.pv.inverter_kw)
        for pe in site.assets.pedf_buildings
    }
    pv_base = tenants.pv_by_bus_kw(site, pv_kw, n)
    out = {"no_vpp": tenants.tenant_report(site, h, base, pv_base).to_dict()}
    for name, df in _bus_frames(site, data, first, last) if data is not None else ():
        bus = {b: df[b].to_numpy() for b in site.bus_names() if b in df}
        pv = {b: df[f"{b}:pv"].to_numpy() for b in site.bus_names() if f"{b}:pv" in df}
        out[name] = tenants.tenant_report(site, h, bus, pv, base).to_dict()
    return out


def stored_tenant_accounts(site: Site, buses) -> dict:
    """Per tenant sub-meter, the accounts of what each bus drew by the stored readings
    (:class:`vpp.store.metered_buses.MeteredBuses`), against the same buses without the VPP;
    intervals without a park-meter reading count nothing."""
    from vpp.accounting import tenants

    ok = buses.metered

    def cut(d: dict) -> dict:
        return {b: np.where(ok, v, 0.0) for b, v in d.items()}

    rep = tenants.tenant_report(
        site, buses.horizon, cut(buses.bus_p_kw), cut(buses.pv_kw), cut(buses.no_vpp_bus_p_kw)
    ).to_dict()
    if buses.unmetered_assets:
        rep["notes"].append(
            f"{len(buses.unmetered_assets)} asset(s) without readings, counted 0: "
            + ", ".join(buses.unmetered_assets[:5])
            + (" and more" if len(buses.unmetered_assets) > 5 else "")
        )
    return rep


def _bus_frames(site: Site, data: Path, first: date, last: date) -> list[tuple[str, pd.DataFrame]]:
    """Each run of ``data`` with a ``buses.csv`` (a park with sub-meters), cut to the period."""
    dirs = [data] if (data / "buses.csv").exists() else sorted(data.glob("*/buses.csv"))
    out = []
    for d in (x if x.is_dir() else x.parent for x in dirs):
        df = pd.read_csv(d / "buses.csv", index_col="time", parse_dates=["time"])
        idx = pd.DatetimeIndex(df.index).tz_convert(site.location.tz)
        name = json.loads((d / "kpis.json").read_text())["run"]["controller"]
        out.append((name, df[(idx.date >= first) & (idx.date <= last)]))
    return out


def _from_data(site: Site, data: Path, first: date, last: date) -> dict[str, dict]:
    from vpp.errors import UserError

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


def report(
    site: Site,
    first: date,
    last: date,
    data: Path | None = None,
    metered: MeteredPeriod | None = None,
    metered_last_year: MeteredPeriod | None = None,
    metered_buses=None,
    posted_ef: IntervalSeries | None = None,
) -> dict:
    """The carbon report's figures (see the module docstring). ``metered`` (and the same
    period 52 weeks earlier, when stored) come from :func:`vpp.store.metered.read_period`,
    ``metered_buses`` (a park with sub-meters) from :func:`vpp.store.metered_buses.
    read_buses`.

    The factor of each interval: the park's emission-factor series (and ``posted_ef``, the
    rows posted to the service) where it covers, as known at the period's end (a cleared
    value, else the latest forecast), else the annual (or hourly) factor; ``factors.used``
    says which, with the counts (:mod:`vpp.park.series`)."""
    dt = site.dispatch.step_minutes / 60.0
    f = site.carbon.energy_factors
    va = site.value_added_10k_cny_per_year
    covers: list[Cover] = []
    ly_covers: list[Cover] = []

    def acc(s: dict, ef: np.ndarray) -> carbon.Accounts:
        return carbon.accounts(s["import_kw"], s["export_kw"], s["pv_used_kw"], ef, dt, f, va)

    def ef_on(h: Horizon, main: bool = True) -> np.ndarray:
        ef, cover = series_ef_kg_per_kwh(
            site.carbon, h, h.start + h.n * h.step, posted_ef, refuse=False
        )
        (covers if main else ly_covers).append(cover)
        return ef

    runs: dict[str, carbon.Accounts] = {}
    if metered is not None:
        ef = ef_on(metered.horizon)
        runs["no_vpp"] = acc(_no_vpp_of(metered), ef)
        runs["metered"] = acc(_run_of(metered), ef)
    else:
        base = no_vpp_series(site, first, last)
        runs["no_vpp"] = acc(base, ef_on(base["horizon"]))
    if metered_last_year is not None:
        ly = metered_last_year
        prev = acc(_run_of(ly), ef_on(ly.horizon, main=False))
        prev_source = "stored"
    else:
        last_year = no_vpp_series(site, _year_before(first), _year_before(last))
        prev = acc(last_year, ef_on(last_year["horizon"], main=False))
        prev_source = "simulated"
    if data is not None:
        for name, s in _from_data(site, data, first, last).items():
            runs[name] = acc(s, s["ef_kg_per_kwh"])
    out = {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "source": "stored" if metered is not None else "simulated",
        "factors": {
            "ef_kg_per_kwh": site.carbon.emission_factor.ef_kg_per_kwh,
            "ef_year": site.carbon.emission_factor.year,
            "ef_region": site.carbon.emission_factor.region,
            "ef_source": site.carbon.emission_factor.source,
            "hourly": site.carbon.emission_factor.hourly_ef_kg_per_kwh is not None,
            "equivalent_kgce_per_kwh": f.equivalent_kgce_per_kwh,
            "equal_value_kgce_per_kwh": f.equal_value_kgce_per_kwh,
            "energy_source": f.source,
            "used": factor_label(site.carbon, covers[0]),
            "series": _series_doc(site, covers[0]),
            "last_year_used": factor_label(site.carbon, ly_covers[0]),
        },
        "targets": {
            "intensity_tce_per_10k_cny": carbon.INTENSITY_TARGET_TCE_PER_10K_CNY,
            "co2_intensity_yoy_reduction_frac": carbon.YOY_REDUCTION_TARGET_FRAC,
        },
        "last_year_source": prev_source,
        "last_year": prev.to_dict(),
        "runs": {},
    }
    if metered is not None:
        out["stored"] = {
            "filled_intervals": metered.filled_intervals,
            "pv_from_forecast": list(metered.pv_from_forecast),
            "pv_unknown": list(metered.pv_unknown),
            "unmetered_dispatch": list(metered.unmetered_dispatch),
        }
    for name, a in runs.items():
        row = a.to_dict()
        if a.co2_t_per_10k_cny is not None and prev.co2_t_per_10k_cny:
            row["co2_intensity_yoy_change_frac"] = carbon.yoy_change_frac(
                a.co2_t_per_10k_cny, prev.co2_t_per_10k_cny
            )
        row["vs_no_vpp_co2_t"] = a.co2_t - runs["no_vpp"].co2_t
        row["vs_no_vpp_tce_equivalent"] = a.tce_equivalent - runs["no_vpp"].tce_equivalent
        row["vs_no_vpp_tce_equal_value"] = a.tce_equal_value - runs["no_vpp"].tce_equal_value
        out["runs"][name] = row
    return out | _tenants_of(site, first, last, data, metered_buses)


def _tenants_of(site: Site, first: date, last: date, data: Path | None, buses) -> dict:
    """``{"tenants": ...}`` for a park with sub-meters (stored when ``buses``, else
    simulated); {} without."""
    if not site.metering.meters:
        return {}
    if buses is not None:
        return {"tenants": {"metered": stored_tenant_accounts(site, buses)}}
    return {"tenants": tenant_accounts(site, first, last, data)}


def _series_doc(site: Site, cover: Cover) -> dict | None:
    """The series the period's factor came from (None: the annual factor alone)."""
    if not cover.name:
        return None
    spec = site.carbon.emission_factor.series
    return {
        "name": cover.name,
        "kind": cover.kind,
        "file": spec.file if spec is not None else "",
        "intervals": cover.n,
        "cleared": cover.cleared,
        "forecast": cover.forecast,
        "fallback": cover.fallback,
    }


def _run_of(m: MeteredPeriod) -> dict[str, np.ndarray]:
    return {"import_kw": m.import_kw, "export_kw": m.export_kw, "pv_used_kw": m.pv_used_kw}


def _no_vpp_of(m: MeteredPeriod) -> dict[str, np.ndarray]:
    return {
        "import_kw": m.no_vpp_import_kw,
        "export_kw": m.no_vpp_export_kw,
        "pv_used_kw": m.pv_used_kw,
    }


def _year_before(d: date) -> date:
    """52 weeks earlier: the same weekday, so workdays meet workdays."""
    return d - timedelta(weeks=52)


def run(args: argparse.Namespace) -> int:
    from vpp.errors import UserError
    from vpp.park.config import ConfigError, load_site

    try:
        site = load_site(args.config)
    except ConfigError as exc:
        raise UserError(f"invalid configuration:\n{exc}") from None
    first, last = _day(args.date_from, "--from"), _day(args.date_to, "--to")
    if last < first:
        raise UserError("--to: must not be before --from")
    day_checks.check_days(site, first, last, args, tariff=False)
    source = args.source or ("simulated" if args.data is not None else "stored")
    if source == "stored" and args.data is not None:
        raise UserError("--data is simulated data: use it without --source stored")
    metered = metered_ly = buses = posted = None
    if source == "stored":
        metered, metered_ly, buses, posted = _read_store(site, first, last)
    doc = report(site, first, last, args.data, metered, metered_ly, buses, posted)
    print(text(site, doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return 0


def _read_store(site: Site, first: date, last: date):
    """The period and (when stored) the same period 52 weeks earlier, from the database."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from vpp.errors import UserError
    from vpp.runtime.settings import Settings
    from vpp.store import series as store_series
    from vpp.store.db import make_engine
    from vpp.store.metered import MissingStoredDataError, read_period

    try:
        url = Settings().database_url
    except ValidationError as exc:
        raise UserError(f"invalid settings: {exc.errors()[0]['msg']}") from None
    if url.startswith("sqlite") and ":memory:" not in url:
        path = Path(url.split(":///", 1)[1])
        if not path.exists():
            raise UserError(
                f"no database at {path} (VPP_DATABASE_URL): the service ('vpp run') stores the "
                "park meter there; for a study, run 'vpp simulate' and pass --data DIR"
            )
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            try:
                metered = read_period(conn, site, first, last)
            except MissingStoredDataError as exc:
                raise UserError(
                    f"{exc} (database {shown}). Choose --from/--to inside the stored days, or "
                    "run 'vpp simulate' for those days and pass --data DIR"
                ) from None
            try:
                ly = read_period(conn, site, _year_before(first), _year_before(last))
            except MissingStoredDataError:
                ly = None
            buses = None
            if site.metering.meters:  # each bus's draw, for the tenants' sub-meters
                from vpp.store.metered_buses import read_buses

                buses = read_buses(conn, site, metered.horizon)
            h = metered.horizon
            posted = store_series.series_between(conn, "ef", h.start, h.start + h.n * h.step)
    except SQLAlchemyError as exc:
        raise UserError(
            f"cannot read the database {shown}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            " (is it the service's database? 'vpp db migrate' creates the tables)"
        ) from None
    finally:
        engine.dispose()
    return metered, ly, buses, posted


def text(site: Site, doc: dict) -> str:
    fa, tg = doc["factors"], doc["targets"]
    lines = [
        f"carbon report: {site.name}, {doc['period']['from']} .. {doc['period']['to']}",
        f"grid factor {fa['ef_kg_per_kwh']} kgCO2/kWh ({fa['ef_region']} {fa['ef_year']}: "
        f"{fa['ef_source']}){', hourly series' if fa['hourly'] else ''}",
        f"factor used: {fa['used']}",
        *(
            [
                f"  last year on another factor ({fa['last_year_used']}): the CO2 yoy change "
                "compares two factors, not only two parks"
            ]
            if fa["last_year_used"] != fa["used"]
            else []
        ),
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
        f"period 52 weeks earlier, {_LAST_YEAR[doc['last_year_source']]})",
    ]
    st = doc.get("stored")
    if st is not None:
        lines.append(
            "source: the service's database (park meter); no_vpp = the meter with batteries, "
            "EV chargers and shiftable loads as without the VPP"
        )
        if st["filled_intervals"]:
            lines.append(f"  {st['filled_intervals']} interval(s) without a reading interpolated")
        if st["pv_from_forecast"]:
            lines.append(
                f"  PV not metered apart, from the decision-time forecast: "
                f"{', '.join(st['pv_from_forecast'])}"
            )
        if st["pv_unknown"]:
            lines.append(
                f"  PV neither metered nor forecast, counted 0: {', '.join(st['pv_unknown'])}"
            )
        if st["unmetered_dispatch"]:
            names = st["unmetered_dispatch"]
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            lines.append(
                f"  {len(names)} dispatched asset(s) without readings, counted as metered: "
                f"{', '.join(names[:5])}{more}"
            )
    else:
        lines.append("source: simulated (no_vpp from the park's profiles)")
    lines += _tenant_lines(doc)
    return "\n".join(lines)


def _tenant_lines(doc: dict) -> list[str]:
    """Per tenant sub-meter and run: bill, energy, peak, CO2, coal, intensity, saving."""
    from vpp.accounting import tenants

    out = []
    for run, rep in doc.get("tenants", {}).items():
        out += [
            "",
            f"tenants, {run}: {tenants.summary_line(rep)}",
            f"  {'meter':<18}{'import MWh':>11}{'export MWh':>11}{'bill CNY':>11}{'peak kW':>9}"
            f"{'CO2 t':>8}{'tce eqv':>8}{'tce/10k CNY':>12}{'saving CNY':>11}",
        ]
        for r in tenants.tenant_rows(rep):
            inten, saving = r["intensity_tce_per_10k_cny"], r["allocated_saving_cny"]
            out.append(
                f"  {r['meter']:<18}{r['import_kwh'] / 1000:11,.2f}{r['export_kwh'] / 1000:11,.2f}"
                f"{r['bill_cny']:11,.0f}{r['peak_import_kw']:9,.0f}{r['co2_t']:8,.2f}"
                f"{r['tce_equivalent']:8,.2f}"
                f"{(f'{inten:.4f}' if inten is not None else '-'):>12}"
                f"{(f'{saving:,.0f}' if saving is not None else '-'):>11}"
            )
        out += [f"  note: {x}" for x in rep["notes"]]
    return out


_LAST_YEAR = {"stored": "as metered", "simulated": "the park's profiles without the VPP"}

"""``vpp forecast backtest``: rolling-origin backtest of the PV and load forecasters.

Edge code: it reads the measured series (SimBench profiles through :mod:`vpp.park.profiles`,
pvlib's shipped TMY3 weather files, or a CSV file), runs the pure engine
:func:`forecasts.backtest.rolling_origin`, prints a table per series and draws a plot.

Series
------
``simbench:<type>``
    a SimBench load profile (e.g. ``simbench:G1-B``), 100 kW peak, on ``--year`` dates.
``pv:simbench:<PVn>``
    an array of ``--kwp`` at ``--lat``/``--lon`` whose cloudiness is the SimBench PV column.
``pv:pvlib:<file stem>``
    an array at the site of a TMY3 file shipped with pvlib (``723170TYA`` Greensboro NC,
    ``703165TY`` Sand Point AK): the physics run on its measured hourly irradiance and
    temperature, held over the four quarter-hours of each hour.
``<path>.csv``
    a CSV with ``--time-col`` (local timestamps) and ``--value-col`` (kW); ``--kind``
    says whether it is a load or a PV array (at ``--lat``/``--lon``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forecasts.backtest import BacktestConfig, format_table, metrics_by_lead, rolling_origin
from forecasts.baselines import Persistence, SeasonalNaive, SmartPersistence
from forecasts.load import LoadForecaster
from forecasts.pv import PvForecaster
from forecasts.types import Series
from vpp.errors import UserError
from vpp.park.model import DEFAULT_TZ, Horizon, Location, Profile, PvArray

STEP = timedelta(minutes=15)


@dataclass(frozen=True)
class Case:
    """A measured series and what to backtest on it."""

    name: str
    series: Series
    pv: PvArray | None = None
    location: Location | None = None


def register(subparsers) -> None:
    parser = subparsers.add_parser("forecast", help="PV and load forecasts")
    sub = parser.add_subparsers(dest="forecast_command", metavar="ACTION", required=True)
    bt = sub.add_parser("backtest", help="rolling-origin backtest with metrics by lead time")
    bt.add_argument("--series", action="append", required=True, help="series (repeatable)")
    bt.add_argument("--horizon", type=int, default=96, help="steps of 15 min (default 96)")
    bt.add_argument("--year", type=int, default=2016, help="year of SimBench series")
    bt.add_argument("--test-days", type=int, default=120, help="days of issue times")
    bt.add_argument("--issue-every", type=int, default=4, help="steps between issue times")
    bt.add_argument("--refit-days", type=int, default=30, help="days between refits")
    bt.add_argument("--lat", type=float, default=30.25, help="site latitude (Hangzhou)")
    bt.add_argument("--lon", type=float, default=120.17, help="site longitude (Hangzhou)")
    bt.add_argument("--kwp", type=float, default=100.0, help="PV array peak DC kW")
    bt.add_argument("--inverter-kw", type=float, default=None, help="default 0.9 * kwp")
    bt.add_argument("--time-col", default="time", help="CSV time column")
    bt.add_argument("--value-col", default="value", help="CSV value column (kW)")
    bt.add_argument("--kind", choices=("load", "pv"), default="load", help="CSV series kind")
    bt.add_argument("--plot", type=Path, default=None, help="write a PNG figure here")
    bt.set_defaults(func=run_backtest)


def run_backtest(args: argparse.Namespace) -> int:
    if args.horizon < 1:
        raise UserError(f"--horizon must be at least 1, got {args.horizon}")
    cases = [_case(spec, args) for spec in args.series]
    results = []
    for case in cases:
        n = case.series.horizon.n
        first = (n - args.test_days * 96 - args.horizon + 1) // 96 * 96  # a midnight
        if first < 14 * 96:
            raise UserError(
                f"{case.name}: {n // 96} days of data leave less than 14 days of history "
                f"before {args.test_days} test days; lower --test-days"
            )
        config = BacktestConfig(
            horizon_steps=args.horizon,
            first_issue=first,
            issue_every=args.issue_every,
            refit_every=args.refit_days * 96,
        )
        result = rolling_origin(case.series, _factories(case), config)
        rows = _metrics(case, result)
        print(format_table(rows, title=f"\n== {case.name}: {len(result.issues)} issue times"))
        results.append((case, result, rows))
    if args.plot is not None:
        _plot(results, args.plot)
        print(f"\nplot written to {args.plot}")
    return 0


def _factories(case: Case) -> dict:
    if case.pv is None:
        return {
            "model": LoadForecaster,
            "seasonal_naive_1w": lambda: SeasonalNaive(672),
            "seasonal_naive_1d": lambda: SeasonalNaive(96),
            "persistence": Persistence,
        }
    pv, loc = case.pv, case.location
    return {
        "model": lambda: PvForecaster.one(pv, loc),
        "smart_persistence": lambda: SmartPersistence(pv, loc),
        "seasonal_naive_1d": lambda: SeasonalNaive(96),
    }


def _metrics(case: Case, result):
    refs = [r for r in result.quantiles_kw if r != "model"]
    if case.pv is None:
        return metrics_by_lead(result, references=refs)
    cs = PvForecaster.one(case.pv, case.location).clear_sky_kw(0, case.series.horizon)
    n = result.truth_kw.shape[1]
    daylight = np.stack([cs[i : i + n] > 0 for i in result.issues])
    return metrics_by_lead(result, norm_kw=case.pv.inverter_kw, mask=daylight, references=refs)


# --------------------------------------------------------------------------------------------
# Series sources
# --------------------------------------------------------------------------------------------
def _pv(args) -> PvArray:
    inv = args.inverter_kw if args.inverter_kw is not None else 0.9 * args.kwp
    return PvArray("pv", "bus", kwp=args.kwp, inverter_kw=inv)


def _year_grid(year: int, tz) -> tuple[Horizon, pd.DatetimeIndex]:
    start = datetime(year, 1, 1, tzinfo=tz)
    n = ((datetime(year + 1, 1, 1, tzinfo=tz) - start) // STEP) if year else 0
    times = pd.date_range(start, periods=n, freq=STEP)
    return Horizon(start, STEP, n), times


def _case(spec: str, args) -> Case:
    from vpp.park import profiles

    tz = ZoneInfo(DEFAULT_TZ)
    try:
        if spec.startswith("simbench:"):
            horizon, times = _year_grid(args.year, tz)
            values = profiles.load_kw(Profile(spec, 100.0), times)
            return Case(spec, Series(horizon, values))
        if spec.startswith("pv:simbench:"):
            pv, loc = _pv(args), Location(args.lat, args.lon)
            horizon, times = _year_grid(args.year, tz)
            values = profiles.pv_available_kw(pv, loc, times)
            return Case(spec, Series(horizon, values), pv, loc)
    except profiles.ProfileError as exc:
        raise UserError(str(exc)) from exc
    if spec.startswith("pv:pvlib:"):
        return _tmy_case(spec, args)
    if spec.endswith(".csv"):
        return _csv_case(spec, args)
    raise UserError(
        f"series '{spec}': expected simbench:<load type>, pv:simbench:<PVn>, "
        "pv:pvlib:<TMY3 file stem> or a .csv path"
    )


def _tmy_case(spec: str, args) -> Case:
    import pvlib

    from vpp.park.pv_physics import ac_power_kw, solar_position

    stem = spec.split(":", 2)[2]
    data_dir = Path(pvlib.__file__).parent / "data"
    matches = [p for p in data_dir.iterdir() if p.stem == stem and p.suffix.lower() == ".csv"]
    if not matches:
        known = sorted(p.stem for p in data_dir.glob("*TY*.[cC][sS][vV]"))
        raise UserError(f"series '{spec}': no TMY3 file '{stem}' in pvlib; known: {known}")
    df, meta = pvlib.iotools.read_tmy3(matches[0], coerce_year=2015, map_variables=True)
    loc = Location(meta["latitude"], meta["longitude"], meta["altitude"], tz="UTC")
    pv = _pv(args)
    # Hourly values are means over the hour ending at the stamp: evaluate at the mid-hour.
    mid = df.index - pd.Timedelta(minutes=30)
    solpos = solar_position(mid, loc)
    irr = pd.DataFrame({c: df[c].to_numpy() for c in ("ghi", "dni", "dhi")}, index=mid)
    p_kw = ac_power_kw(pv, solpos, irr, df["temp_air"].to_numpy(), df["wind_speed"].to_numpy())
    tz = timezone(timedelta(hours=float(meta["TZ"])))
    start = (df.index[0] - pd.Timedelta(hours=1)).to_pydatetime().replace(tzinfo=tz)
    values = np.repeat(p_kw, 4)
    return Case(spec, Series(Horizon(start, STEP, len(values)), values), pv, loc)


def _csv_case(spec: str, args) -> Case:
    path = Path(spec)
    if not path.exists():
        raise UserError(f"series file not found: {path}")
    df = pd.read_csv(path)
    for col in (args.time_col, args.value_col):
        if col not in df.columns:
            raise UserError(f"{path}: no column '{col}'; columns are {list(df.columns)}")
    times = pd.DatetimeIndex(pd.to_datetime(df[args.time_col]))
    if times.tz is None:
        times = times.tz_localize(DEFAULT_TZ)
    step = times[1] - times[0] if len(times) > 1 else None
    if step != pd.Timedelta(STEP) or not (np.diff(times.asi8) == step.value).all():
        raise UserError(f"{path}: '{args.time_col}' must be a regular 15-minute grid")
    values = pd.to_numeric(df[args.value_col], errors="coerce").to_numpy(dtype=float)
    series = Series(Horizon(times[0].to_pydatetime(), STEP, len(values)), values)
    if args.kind == "pv":
        return Case(spec, series, _pv(args), Location(args.lat, args.lon))
    return Case(spec, series)


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------
def _plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(16, 3.6 * len(results)), squeeze=False)
    for row, (case, result, _) in enumerate(results):
        _plot_case(axes[row], case, result)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_case(axes, case: Case, result) -> None:
    truth = result.truth_kw
    lead_h = (np.arange(truth.shape[1]) + 1) * result.step_h
    ok = np.isfinite(truth)
    if case.pv is not None:
        ok &= truth > 0
    for name, q in result.quantiles_kw.items():
        err = np.where(ok, np.abs(q[1] - truth), np.nan)
        axes[0].plot(lead_h, np.nanmean(err, axis=0), label=name)
    axes[0].set(title=f"{case.name}: MAE of P50", xlabel="lead time (h)", ylabel="kW")
    axes[0].legend(fontsize=8)
    q = result.quantiles_kw["model"]
    inside = np.where(ok, (truth >= q[0]) & (truth <= q[2]), np.nan)
    axes[1].plot(lead_h, np.nanmean(inside, axis=0))
    axes[1].axhspan(0.7, 0.9, color="green", alpha=0.15)
    axes[1].set(title="model P10-P90 coverage", xlabel="lead time (h)", ylim=(0, 1))
    # One week of day-ahead forecasts: the issue times at midnight.
    spd = round(24 / result.step_h)
    days = [i for i, k in enumerate(result.issues) if k % spd == 0][-7:]
    if not days:
        return
    t = np.concatenate([result.issues[i] + np.arange(spd) for i in days]) * result.step_h / 24
    cut = [slice(None), days, slice(0, spd)]
    axes[2].fill_between(t, q[tuple(cut)][0].ravel(), q[tuple(cut)][2].ravel(), alpha=0.3)
    axes[2].plot(t, q[tuple(cut)][1].ravel(), label="P50 (issued at midnight)")
    axes[2].plot(t, truth[days, :spd].ravel(), "k", lw=0.8, label="measured")
    axes[2].set(title="last week, day-ahead", xlabel="day of series", ylabel="kW")
    axes[2].legend(fontsize=8)

"""Scenario files: a park, its days, its DR calls and how its truth departs from the profiles,
in one YAML file (``configs/scenarios/*.yaml``), read and validated once, at the edge.

A scenario file::

    description: a production line added on Monday; the depot's trucks charge overnight
    park: ../parks/fleet_depot.yaml      # relative to the scenario file
    dr: dr_depot.yaml                    # optional: a DR file (``dr_events: [...]``)
    start: 2026-09-13                    # first day (the park's zone), at 00:00
    days: 7
    forecast: naive                      # naive (default) | model | perfect
    truth:                               # vpp.sim.truth.SimOptions, all optional
      load_noise_frac: 0.05
      load_noise_rho: 0.95
      p_stale: 0.0
      load_steps:
      - {assets: [D02-base], start: 2026-09-14T06:00, scale: 1.2}   # end: optional
      pv_weather_offset_days: 0
      pv_weather_jitter_days: 7

Times without an offset are in the park's zone. Every problem names the file and the field
path, the way the park file's do (:class:`vpp.park.config.ConfigError`)::

    scenarios/x.yaml: truth.load_steps[0].assets[1]: 'M09-base' is not a load of the park ...

A file of ``configs/scenarios/`` with ``dr_events`` and no ``park`` is a plain DR file
(``vpp simulate --dr``), not a scenario: :func:`is_scenario_file` tells them apart.

:func:`forecast_error` measures how wrong a history-fed forecast is on a scenario's truth:
the figure that says the scenario's forecasts are honestly wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from vpp.park.config import (
    ConfigError,
    file_label,
    load_dr_file,
    load_site,
    read_yaml_mapping,
)
from vpp.park.coverage import calendar_problem, planned_days, tariff_problem
from vpp.park.model import DemandResponseEvent, Horizon, Site
from vpp.plan.history_forecasters import FORECASTS, MeasuredHistory, NaiveModel, asset_names
from vpp.sim.simulated_park import SimulatedPark
from vpp.sim.truth import LoadStep, SimOptions, load_names

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "configs" / "scenarios"
KEYS = ("description", "park", "dr", "start", "days", "forecast", "truth")
TRUTH_KEYS = tuple(f.name for f in fields(SimOptions))
STEP_KEYS = ("assets", "start", "scale", "end")
DAYS_MAX = 366.0


@dataclass(frozen=True)
class Scenario:
    """A loaded, validated scenario: the park and DR events are read already.

    ``start`` is the first interval (00:00 of the file's day in the park's zone); ``options``
    is the truth of :class:`vpp.sim.simulated_park.SimulatedPark`.
    """

    name: str
    description: str
    path: Path
    park_file: Path
    dr_file: Path | None
    start: datetime
    days: float
    forecast: str
    options: SimOptions
    site: Site
    events: tuple[DemandResponseEvent, ...]


# ------------------------------------------------------------------------------------------
# Finding scenario files
# ------------------------------------------------------------------------------------------
def is_scenario_file(path: str | Path) -> bool:
    """True for a YAML mapping with a ``park`` key (a plain DR file has only ``dr_events``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and "park" in raw


def scenario_files(folder: str | Path = SCENARIO_DIR) -> list[Path]:
    """The scenario files of ``folder`` (sorted), leaving out plain DR files."""
    return sorted(p for p in Path(folder).glob("*.yaml") if is_scenario_file(p))


def find_scenario(name_or_path: str, folder: str | Path = SCENARIO_DIR) -> Path:
    """A scenario file by path, or by name (its file stem in ``folder``)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    cand = Path(folder) / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    known = [x.stem for x in scenario_files(folder)]
    raise ConfigError([f"scenario {name_or_path!r}: no such file or name; known: {known}"])


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------
def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file, its park and its DR file. Raises
    :class:`ConfigError` with every problem as ``FILE: field.path: message``."""
    path = Path(path)
    label = file_label(path)
    raw = read_yaml_mapping(path)
    problems: list[str] = []
    bad = sorted(set(raw) - set(KEYS), key=str)
    problems += [f"{k}: unknown key; expected one of {list(KEYS)}" for k in bad]
    description = _text(raw, "description", problems)
    forecast = raw.get("forecast", "naive")
    if forecast not in FORECASTS:
        problems.append(f"forecast: must be one of {list(FORECASTS)}, got {forecast!r}")
    days = _number(raw, "days", problems, lo=0.0, hi=DAYS_MAX, lo_open=True)
    day = parse_day(raw.get("start"), "start", problems)
    park_file = _file(raw, "park", path, problems)
    dr_file = _file(raw, "dr", path, problems) if raw.get("dr") is not None else None
    truth = raw.get("truth", {}) or {}
    if not isinstance(truth, dict):
        problems.append(f"truth: expected a mapping of {list(TRUTH_KEYS)}, got {_kind(truth)}")
        truth = {}
    if park_file is None:
        raise ConfigError([f"{label}: {p}" for p in problems])
    try:
        site = load_site(park_file)
    except ConfigError as exc:
        park = raw["park"]
        problems += [f"park ({park}): {p}" for p in exc.problems]
        raise ConfigError([f"{label}: {p}" for p in problems]) from None
    tz = ZoneInfo(site.location.tz)
    options = _options(truth, site, tz, problems)
    events = site.dr_events
    if dr_file is not None:
        try:
            events = events + load_dr_file(dr_file, site.location.tz, site)
        except ConfigError as exc:
            problems += [f"dr ({raw['dr']}): {p}" for p in exc.problems]
    start = datetime.combine(day, time(0), tzinfo=tz) if day is not None else None
    if start is not None and days is not None:
        problems += _coverage(site, start, days)
    if problems:
        raise ConfigError([f"{label}: {p}" for p in problems])
    assert start is not None and days is not None and description is not None
    return Scenario(
        name=path.stem,
        description=description,
        path=path,
        park_file=park_file,
        dr_file=dr_file,
        start=start,
        days=float(days),
        forecast=str(forecast),
        options=options,
        site=site,
        events=tuple(events),
    )


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _text(raw: dict, key: str, problems: list[str]) -> str | None:
    v = raw.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{key}: required, a short text of what the scenario tests")
        return None
    return " ".join(v.split())


def _number(
    raw: dict,
    key: str,
    problems: list[str],
    lo: float,
    hi: float,
    lo_open: bool = False,
    where: str = "",
    required: bool = True,
) -> float | None:
    path = f"{where}{key}"
    if key not in raw:
        if required:
            problems.append(f"{path}: required")
        return None
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        problems.append(f"{path}: expected a number, got {v!r}")
        return None
    if v < lo or (lo_open and v == lo) or v > hi:
        left = "(" if lo_open else "["
        problems.append(f"{path}: must be in {left}{lo:g}, {hi:g}], got {v:g}")
        return None
    return float(v)


def _integer(raw: dict, key: str, problems: list[str], lo: int, hi: int, where: str) -> int:
    v = raw.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int):
        problems.append(f"{where}{key}: expected a whole number of days, got {v!r}")
        return 0
    if not lo <= v <= hi:
        problems.append(f"{where}{key}: must be in [{lo}, {hi}], got {v}")
        return 0
    return v


def parse_day(v: Any, path: str, problems: list[str], starts: str = "the run") -> date | None:
    """A day from a data file's field (``YYYY-MM-DD``), or None with the problem noted under
    ``path``; ``starts`` names what starts at 00:00 of it (in the message)."""
    if isinstance(v, datetime):
        problems.append(f"{path}: expected a day (YYYY-MM-DD; {starts} starts at 00:00), got {v}")
        return None
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v)
        except ValueError:
            pass
    problems.append(f"{path}: expected a day, YYYY-MM-DD, got {v!r}")
    return None


def _moment(v: Any, path: str, tz: ZoneInfo, problems: list[str]) -> datetime | None:
    """A time of the park: a datetime or a day (its 00:00); naive means the park's zone."""
    t: datetime | None = None
    if isinstance(v, datetime):
        t = v
    elif isinstance(v, date):
        t = datetime.combine(v, time(0))
    elif isinstance(v, str):
        try:
            t = datetime.fromisoformat(v)
        except ValueError:
            t = None
    if t is None:
        problems.append(f"{path}: expected a time, YYYY-MM-DDTHH:MM (the park's zone), got {v!r}")
        return None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def _file(raw: dict, key: str, scenario: Path, problems: list[str]) -> Path | None:
    v = raw.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{key}: must name a YAML file (relative to the scenario), got {v!r}")
        return None
    f = (scenario.parent / v).resolve()
    if not f.is_file():
        problems.append(f"{key}: no such file {v!r} (looked at {f})")
        return None
    return f


def _options(truth: dict, site: Site, tz: ZoneInfo, problems: list[str]) -> SimOptions:
    """The truth's :class:`SimOptions` (defaults for what the file leaves out)."""
    w = "truth."
    bad = sorted(set(truth) - set(TRUTH_KEYS), key=str)
    problems += [f"{w}{k}: unknown key; expected one of {list(TRUTH_KEYS)}" for k in bad]
    d = SimOptions()
    kw: dict[str, Any] = {}
    for key, lo, hi in (("load_noise_frac", 0.0, 1.0), ("p_stale", 0.0, 1.0)):
        v = _number(truth, key, problems, lo, hi, where=w, required=False)
        kw[key] = getattr(d, key) if v is None else v
    rho = _number(truth, "load_noise_rho", problems, 0.0, 0.999, where=w, required=False)
    kw["load_noise_rho"] = d.load_noise_rho if rho is None else rho
    kw["pv_weather_offset_days"] = _integer(truth, "pv_weather_offset_days", problems, -366, 366, w)
    kw["pv_weather_jitter_days"] = _integer(truth, "pv_weather_jitter_days", problems, 0, 60, w)
    steps = truth.get("load_steps", []) or []
    if not isinstance(steps, list):
        problems.append(f"{w}load_steps: expected a list, got {_kind(steps)}")
        steps = []
    known = set(load_names(site))
    kw["load_steps"] = tuple(
        s
        for i, item in enumerate(steps)
        if (s := _step(item, f"{w}load_steps[{i}].", known, tz, problems)) is not None
    )
    return SimOptions(**kw)


def _step(item: Any, w: str, known: set[str], tz: ZoneInfo, problems: list[str]) -> LoadStep | None:
    if not isinstance(item, dict):
        problems.append(f"{w[:-1]}: expected a mapping of {list(STEP_KEYS)}, got {_kind(item)}")
        return None
    n0 = len(problems)
    bad = sorted(set(item) - set(STEP_KEYS), key=str)
    problems += [f"{w}{k}: unknown key; expected one of {list(STEP_KEYS)}" for k in bad]
    assets = item.get("assets")
    if isinstance(assets, str):
        assets = [assets]
    if not isinstance(assets, list) or not assets:
        problems.append(f"{w}assets: expected a list of load names, got {assets!r}")
        assets = []
    for j, name in enumerate(assets):
        if name not in known:
            problems.append(
                f"{w}assets[{j}]: {name!r} is not a load of the park; expected one of "
                f"{sorted(known)}"
            )
    scale = _number(item, "scale", problems, 0.0, 10.0, where=w)
    start = _moment(item.get("start"), f"{w}start", tz, problems)
    end = None
    if item.get("end") is not None:
        end = _moment(item["end"], f"{w}end", tz, problems)
        if end is not None and start is not None and end <= start:
            problems.append(f"{w}end: must be after start ({start.isoformat()}), got {end}")
    if len(problems) > n0 or start is None or scale is None:
        return None
    return LoadStep(tuple(assets), start, scale, end)


def _coverage(site: Site, start: datetime, days: float) -> list[str]:
    """The run's days (and its last plan's look-ahead) inside the tariff and a known calendar."""
    first, last = planned_days(site, start, start + timedelta(days=days))
    out = []
    for line in (tariff_problem(site, first, last), calendar_problem(site, first, last)):
        if line is not None:
            out.append(f"start, days: {line}")
    return out


# ------------------------------------------------------------------------------------------
# How wrong a history-fed forecast is on the scenario's truth
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastError:
    """Errors of the park's P50 forecasts (the whole horizon, issued every ``every_h``).

    ``load_mape``: mean over intervals of |forecast - truth| / truth of the park's summed load;
    ``load_bias``: sum(forecast - truth) / sum(truth) (negative: the forecast is low);
    ``pv_wape``: sum |forecast - truth| / sum truth of the summed PV (a weighted MAPE: PV is 0
    at night). ``None`` where the park has no PV. ``asset_bias``: per load, as ``load_bias``
    (a stepped load shows its step here, hidden in the park's sum).
    """

    load_mape: float
    load_bias: float
    pv_wape: float | None
    forecasts: int
    horizon_steps: int
    asset_bias: dict[str, float]


def forecast_error(
    site: Site,
    start: datetime,
    days: float,
    options: SimOptions | None = None,
    seed: int = 0,
    history_days: int = 14,
    every_h: float = 3.0,
) -> ForecastError:
    """The naive forecaster of the closed loop (:class:`vpp.plan.history_forecasters.NaiveModel`)
    against the simulated park's truth over ``days`` from ``start``, its history the truth of
    the ``history_days`` before (as :func:`vpp.sim.closed_loop.simulate` primes it) and then
    of each interval as it passes."""
    park = SimulatedPark(site, seed=seed, start=start, options=options)
    step = timedelta(minutes=site.dispatch.step_minutes)
    n_h = site.dispatch.horizon_steps
    pv, loads = asset_names(site)
    names = [*pv, *loads]
    h0 = datetime.combine(start.date() - timedelta(days=history_days), time(0), start.tzinfo)
    n_run = round(timedelta(days=days) / step)
    k_start = round((start - h0) / step)
    truth = park.truth(Horizon(h0, step, k_start + n_run + n_h))
    history = MeasuredHistory(h0, step, names)
    model = NaiveModel(site)
    every = max(round(timedelta(hours=every_h) / step), 1)
    ape, err, tot, pv_err, pv_tot, count = [], 0.0, 0.0, 0.0, 0.0, 0
    a_err = dict.fromkeys(loads, 0.0)
    a_tot = dict.fromkeys(loads, 0.0)
    for k in range(k_start, k_start + n_run, every):
        have = round((history.end - h0) / step)
        history.extend({n: truth[n][have:k] for n in names})
        at = h0 + k * step
        history.now = at
        fc = model.predict(site, Horizon(at, step, n_h), history)
        true_load = sum(truth[n][k : k + n_h] for n in loads)
        diff = sum(fc.p50[n] for n in loads) - true_load
        ape.append(np.abs(diff) / np.maximum(true_load, 1e-6))
        err, tot = err + float(diff.sum()), tot + float(true_load.sum())
        for n in loads:
            a_err[n] += float(np.sum(fc.p50[n] - truth[n][k : k + n_h]))
            a_tot[n] += float(np.sum(truth[n][k : k + n_h]))
        if pv:
            true_pv = sum(truth[n][k : k + n_h] for n in pv)
            pv_err += float(np.abs(sum(fc.p50[n] for n in pv) - true_pv).sum())
            pv_tot += float(true_pv.sum())
        count += 1
    return ForecastError(
        load_mape=float(np.mean(np.concatenate(ape))),
        load_bias=err / tot if tot > 0 else 0.0,
        pv_wape=pv_err / pv_tot if pv and pv_tot > 0 else None,
        forecasts=count,
        horizon_steps=n_h,
        asset_bias={n: a_err[n] / a_tot[n] if a_tot[n] > 0 else 0.0 for n in loads},
    )

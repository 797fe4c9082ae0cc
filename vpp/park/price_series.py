"""Read a price or emission-factor series from a CSV file (and check posted rows the same way).

The file, one row an interval (``#`` starts a comment line)::

    interval_start,price_cny_per_kwh,issued_at,export_price_cny_per_kwh
    2026-07-15T00:00:00+08:00,0.312,,
    2026-07-15T00:15:00+08:00,0.305,2026-07-14T10:00:00+08:00,

Columns: ``interval_start`` (ISO-8601 with a UTC offset), the value (``price_cny_per_kwh``
for a price series, ``ef_kg_per_kwh`` for an emission-factor series), optionally
``issued_at`` (ISO-8601 with offset: the row is a forecast issued then; empty: a cleared
value) and, for prices, ``export_price_cny_per_kwh`` (empty: the tariff's export price).
Every interval start lies on the series' step (``step_minutes``, from midnight UTC) and no
interval appears twice with the same issue time. An error names the file, the line and the
column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vpp.park.series import IntervalSeries

START, ISSUED, EXPORT = "interval_start", "issued_at", "export_price_cny_per_kwh"
VALUE_COLUMN = {
    "energy": "price_cny_per_kwh",
    "average": "ef_kg_per_kwh",
    "marginal": "ef_kg_per_kwh",
}
#: The largest value a row may carry: CNY/kWh for prices, kg/kWh for factors.
VALUE_MAX = {"energy": 100.0, "average": 2.0, "marginal": 2.0}
STEPS_MINUTES = (5, 15, 30, 60)


class SeriesFileError(ValueError):
    """Problems of a series file or a posted series, each naming where (line, column)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Row:
    """One interval as read: where it came from (``"line 3"``, ``"points[2]"``) and values."""

    where: str
    start: datetime
    value: float
    issued: datetime | None = None
    export_value: float | None = None


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a UTC offset; ValueError otherwise."""
    t = datetime.fromisoformat(text.strip())
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("has no UTC offset (write e.g. 2026-07-15T00:00:00+08:00)")
    return t


def row_problems(
    rows: Sequence[Row], step_minutes: int, kind: str, allow_negative: bool = False
) -> list[str]:
    """What is wrong with ``rows`` as one series: a value out of range or not a number, an
    interval start off the step, the same interval and issue time twice. Each problem begins
    with the row's ``where`` and names the column."""
    col = VALUE_COLUMN[kind]
    problems: list[str] = []
    if step_minutes not in STEPS_MINUTES:
        return [f"step_minutes: expected one of {list(STEPS_MINUTES)}, got {step_minutes!r}"]
    lo = -VALUE_MAX[kind] if allow_negative and kind == "energy" else 0.0
    seen: dict[tuple[float, float | None], str] = {}
    for r in rows:
        for name, v in ((col, r.value), (EXPORT, r.export_value)):
            if v is None:
                continue
            if not math.isfinite(v):
                problems.append(f"{r.where}: {name}: expected a finite number, got {v!r}")
            elif not lo <= v <= VALUE_MAX[kind]:
                problems.append(
                    f"{r.where}: {name}: expected {lo:g} .. {VALUE_MAX[kind]:g}, got {v!r}"
                    + ("" if allow_negative or v >= 0 else " (allow_negative is false)")
                )
        start_s = r.start.timestamp()
        if start_s % (step_minutes * 60) != 0:
            problems.append(
                f"{r.where}: {START}: {r.start.isoformat()} is not on the {step_minutes}-minute "
                "step of the series"
            )
        key = (start_s, None if r.issued is None else r.issued.timestamp())
        if key in seen:
            what = "cleared" if r.issued is None else f"issued {r.issued.isoformat()}"
            problems.append(
                f"{r.where}: {START}: interval {r.start.isoformat()} ({what}) appears twice "
                f"(also {seen[key]})"
            )
        else:
            seen[key] = r.where
    return problems


def series_of(
    rows: Iterable[Row], name: str, step_minutes: int, kind: str, source: str
) -> IntervalSeries:
    """The checked rows as the model's :class:`IntervalSeries`."""
    rows = list(rows)
    has_export = any(r.export_value is not None for r in rows)
    return IntervalSeries(
        name=name,
        step_minutes=step_minutes,
        start=tuple(r.start for r in rows),
        value=tuple(float(r.value) for r in rows),
        issued=tuple(r.issued for r in rows),
        export_value=tuple(r.export_value for r in rows) if has_export else None,
        kind=kind,  # type: ignore[arg-type]
        source=source,
    )


def read_series_csv(
    path: Path,
    kind: str,
    step_minutes: int,
    name: str = "",
    allow_negative: bool = False,
    label: str | None = None,
) -> IntervalSeries:
    """Read and check a series file (the module's format); :class:`SeriesFileError` lists
    every problem as ``FILE: line N: COLUMN: what``.

    Parameters
    ----------
    path : the CSV file.
    kind : ``energy`` (prices, CNY/kWh), ``average`` or ``marginal`` (factors, kg/kWh).
    step_minutes : the series' interval length (min).
    name : the series' name (default: the file's stem).
    allow_negative : prices may go below zero.
    label : how messages name the file (default: its path).
    """
    label = label or str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SeriesFileError([f"{label}: cannot read ({exc.strerror})"]) from None
    rows, problems = _rows(text, kind, label)
    problems += [f"{label}: {p}" for p in row_problems(rows, step_minutes, kind, allow_negative)]
    if not rows and not problems:
        problems.append(f"{label}: no rows")
    if problems:
        raise SeriesFileError(problems)
    return series_of(rows, name or path.stem, step_minutes, kind, str(path))


def _rows(text: str, kind: str, label: str) -> tuple[list[Row], list[str]]:
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if not ln.startswith("#")]
    lines = [(i, ln) for i, ln in lines if ln.strip()]
    if not lines:
        return [], [f"{label}: no header line"]
    head_no, head = lines[0]
    header = [h.strip() for h in next(csv.reader([head]))]
    col = VALUE_COLUMN[kind]
    allowed = {START, col, ISSUED} | ({EXPORT} if kind == "energy" else set())
    problems = [
        f"{label}: line {head_no}: missing column {c!r} (header: {', '.join(header)})"
        for c in (START, col)
        if c not in header
    ]
    problems += [
        f"{label}: line {head_no}: unknown column {c!r}; expected {sorted(allowed)}"
        for c in header
        if c not in allowed
    ]
    if problems:
        return [], problems
    rows: list[Row] = []
    for no, ln in lines[1:]:
        cells = [c.strip() for c in next(csv.reader([ln]))]
        if len(cells) > len(header):
            problems.append(f"{label}: line {no}: {len(cells)} cells, header has {len(header)}")
            continue
        cell = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
        row, bad = _row(cell, col, f"line {no}")
        problems += [f"{label}: {p}" for p in bad]
        if row is not None:
            rows.append(row)
    return rows, problems


def _row(cell: dict[str, str], col: str, where: str) -> tuple[Row | None, list[str]]:
    bad: list[str] = []
    start = issued = None
    value = export = None
    try:
        start = parse_time(cell[START])
    except ValueError as exc:
        bad.append(f"{where}: {START}: not a time with offset, got {cell[START]!r} ({exc})")
    if cell.get(ISSUED):
        try:
            issued = parse_time(cell[ISSUED])
        except ValueError as exc:
            bad.append(f"{where}: {ISSUED}: not a time with offset, got {cell[ISSUED]!r} ({exc})")
    for name in (col, EXPORT):
        text = cell.get(name, "")
        if name == EXPORT and not text:
            continue
        try:
            v = float(text)
        except ValueError:
            bad.append(f"{where}: {name}: expected a number, got {text!r}")
            continue
        if name == col:
            value = v
        else:
            export = v
    if bad or start is None or value is None:
        return None, bad
    return Row(where, start, value, issued, export), []

"""Checks of demand-response events: one path, wherever the events come from.

The park file (:mod:`vpp.park.config`), a ``--dr`` scenario file
(:func:`vpp.park.config.load_dr_file`), the API (``api.routes.dr``) and the runtime (events
already stored) all parse an event into a :class:`vpp.park.model.DemandResponseEvent` and
then ask :func:`event_problems` / :func:`events_problems` what is wrong with it. Types,
unknown keys and enumerations are the parser's part (pydantic, against the model); this module
checks what the values mean for the park: window order, length and overlap, kW against the
connection, relations between the times, printable text, and (where a clock is given) the
range of windows around now. Every problem names the field path, the bound and the value::

    dr_events[2].windows[0].end: must be after start (2026-07-15T14:00:00+08:00), got
    2026-07-15T13:00:00+08:00

Bounds and why (see :class:`DrBounds`):

- a window lasts at least one dispatch step (a shorter one may cover no interval the plan
  can act on) and at most 24 h; an event's windows span at most 24 h (an invitation's
  response periods lie in one operating day) and do not overlap (an interval answers one
  request);
- requested and cleared kW lie in ``[0, import_max_kw + export_max_kw]``: no response can
  move the park's exchange further than from full import to full export; an absolute
  ``import_cap_kw`` lies in ``[-export_max_kw, import_max_kw]`` (below, infeasible; above, no
  cap at all and most likely a unit error);
- every time lies in the years 2000-2099 (beyond, date arithmetic overflows), and, where a
  clock is given, windows end at most ``past`` before now and start at most ``ahead`` after
  it (the service's settings ``dr_window_past_days`` / ``dr_window_ahead_days``);
- ``baseline_method`` is one the settlement implements (:class:`DrBaselineMethod`); event ids
  are 1-100 characters of ``A-Z a-z 0-9 . _ : -``; ``issuer`` at most 100 printable
  characters (no control, format or bidirectional-override characters, no NUL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from vpp.park.model import DemandResponseEvent, DrWindow, Site


class DrBaselineMethod(StrEnum):
    """Baselines a DR event may name: the ones the settlement implements
    (``vpp.accounting.dr_baseline.METHOD``)."""

    GBT37016_5OF10 = "gbt37016_5of10"


EVENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"  # the same set, for the API's schema
TEXT_MAX_CHARS = 100
YEAR_MIN, YEAR_MAX = 2000, 2099


@dataclass(frozen=True)
class DrPark:
    """What bounds a DR event in the park: the connection's import and export limits (kW)
    and the dispatch step."""

    import_max_kw: float
    export_max_kw: float
    step: timedelta

    @classmethod
    def of(cls, site: Site) -> DrPark:
        return cls(
            site.connection.import_max_kw,
            site.connection.export_max_kw,
            timedelta(minutes=site.dispatch.step_minutes),
        )

    @property
    def exchange_range_kw(self) -> float:
        """The most a response can move the park's exchange: full import to full export."""
        return self.import_max_kw + self.export_max_kw


@dataclass(frozen=True)
class DrBounds:
    """Bounds of DR events that are choices, not physics (see the module's docstring).

    ``window_min`` None is one dispatch step of the park (15 min without a park).
    ``past`` / ``ahead`` apply only where a clock is given (:func:`event_problems`'s
    ``now``); None leaves that side open.
    """

    window_min: timedelta | None = None
    window_max: timedelta = timedelta(hours=24)
    span_max: timedelta = timedelta(hours=24)
    windows_max: int = 48
    min_duration_max: timedelta = timedelta(hours=24)
    band_max_frac: float = 10.0
    past: timedelta | None = None
    ahead: timedelta | None = None


@dataclass(frozen=True)
class DrProblem:
    """One problem: the field path (``windows[0].end``), what was expected, the value."""

    path: str
    message: str
    value: Any

    def __str__(self) -> str:
        return f"{self.path}: {self.message}, got {show(self.value)}"

    def parts(self) -> list[str | int]:
        """The path as a list of keys and indices (``["windows", 0, "end"]``)."""
        out: list[str | int] = []
        for chunk in self.path.replace("]", "").split("."):
            name, *idx = chunk.split("[")
            out += ([name] if name else []) + [int(i) for i in idx]
        return out


def show(value: Any) -> str:
    """A value as a message shows it: ISO times, minutes, ``g`` numbers, ``repr`` text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _minutes(value)
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def _minutes(d: timedelta) -> str:
    """A duration in the unit that reads best: s under a minute, h in whole hours, else min."""
    s = d.total_seconds()
    if abs(s) < 60:
        return f"{s:g} s"
    if s % 3600 == 0:
        return f"{s / 3600:g} h"
    return f"{s / 60:g} min"


# ------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------
def events_problems(
    events: Sequence[DemandResponseEvent],
    park: DrPark | None = None,
    bounds: DrBounds = DrBounds(),
    now: datetime | None = None,
    where: str = "dr_events",
    taken: dict[str, str] | None = None,
) -> list[DrProblem]:
    """Every problem of a list of events, paths ``where[i].field``.

    Parameters
    ----------
    events : the events, in the order of their source.
    park : the park's limits (kW checks against the connection are skipped when None).
    bounds : the bounds (:class:`DrBounds`).
    now : the clock the window range is checked against (tz-aware); None: not checked.
    where : the list's field path.
    taken : event ids already in use, each with where it is (e.g. the park file's events
        when a scenario file adds to them).
    """
    seen = dict(taken or {})
    out: list[DrProblem] = []
    for i, e in enumerate(events):
        p = f"{where}[{i}]"
        if e.event_id in seen:
            out.append(
                DrProblem(f"{p}.event_id", f"is already used by {seen[e.event_id]}", e.event_id)
            )
        seen.setdefault(e.event_id, p)
        out += event_problems(e, park, bounds, now, p)
    return out


def event_problems(
    e: DemandResponseEvent,
    park: DrPark | None = None,
    bounds: DrBounds = DrBounds(),
    now: datetime | None = None,
    where: str = "",
) -> list[DrProblem]:
    """Every problem of one event, paths ``where.field`` (``field`` alone when ``where`` is
    empty). Parameters as :func:`events_problems`."""
    p = f"{where}." if where else ""
    out = list(_text_problems(e, p))
    out += _window_problems(e, park, bounds, p)
    out += _time_problems(e, bounds, now, p)
    out += _kw_problems(e, park, p)
    out += _terms_problems(e, bounds, p)
    return out


def _text_problems(e: DemandResponseEvent, p: str) -> Iterable[DrProblem]:
    eid = e.event_id
    if not 1 <= len(eid) <= TEXT_MAX_CHARS or not set(eid) <= EVENT_ID_CHARS:
        yield DrProblem(
            f"{p}event_id",
            f"must be 1-{TEXT_MAX_CHARS} characters of A-Z a-z 0-9 . _ : -",
            eid,
        )
    if len(e.issuer) > TEXT_MAX_CHARS:
        yield DrProblem(f"{p}issuer", f"must be at most {TEXT_MAX_CHARS} characters", e.issuer)
    bad = sorted({f"U+{ord(c):04X}" for c in e.issuer if not c.isprintable()})
    if bad:
        yield DrProblem(
            f"{p}issuer",
            f"must be printable text (no control or format characters: {', '.join(bad)})",
            e.issuer,
        )
    if e.baseline_method not in {m.value for m in DrBaselineMethod}:
        yield DrProblem(
            f"{p}baseline_method",
            f"must be one of {[m.value for m in DrBaselineMethod]}",
            e.baseline_method,
        )


def _window_problems(
    e: DemandResponseEvent, park: DrPark | None, b: DrBounds, p: str
) -> Iterable[DrProblem]:
    if not e.windows:
        yield DrProblem(f"{p}windows", "at least one response window is required", [])
        return
    if len(e.windows) > b.windows_max:
        yield DrProblem(f"{p}windows", f"at most {b.windows_max} windows", len(e.windows))
    shortest = b.window_min or (park.step if park else timedelta(minutes=15))
    for j, w in enumerate(e.windows):
        q = f"{p}windows[{j}]"
        if w.start.tzinfo is None or w.end.tzinfo is None:
            yield DrProblem(f"{q}.start", "must carry a time zone", w.start)
            continue
        length = w.end - w.start
        if length <= timedelta(0):
            yield DrProblem(f"{q}.end", f"must be after start ({w.start.isoformat()})", w.end)
        elif length < shortest:
            why = " (one dispatch step)" if b.window_min is None and park else ""
            yield DrProblem(
                f"{q}.end", f"the window must last at least {_minutes(shortest)}{why}", length
            )
        elif length > b.window_max:
            yield DrProblem(
                f"{q}.end", f"the window must last at most {_minutes(b.window_max)}", length
            )
    timed = [(w, j) for j, w in enumerate(e.windows) if _aware(w.start) and _aware(w.end)]
    order = sorted(timed, key=lambda x: x[0].start)
    reach: tuple[DrWindow, int] | None = None  # the window reaching furthest so far
    for w, j in order:
        if reach is not None and w.start < reach[0].end:
            a, i = reach
            yield DrProblem(
                f"{p}windows[{j}].start",
                f"overlaps windows[{i}] ({a.start.isoformat()} to {a.end.isoformat()}); the "
                "windows of one event must not overlap",
                w.start,
            )
        if reach is None or w.end > reach[0].end:
            reach = (w, j)
    if order:
        first, last = order[0][0].start, max(w.end for w, _ in order)
        if last - first > b.span_max:
            yield DrProblem(
                f"{p}windows",
                f"the windows must lie within {_minutes(b.span_max)} of the first start "
                f"({first.isoformat()})",
                last,
            )


def _time_problems(
    e: DemandResponseEvent, b: DrBounds, now: datetime | None, p: str
) -> Iterable[DrProblem]:
    named = [
        (f"{p}windows[{j}].{k}", getattr(w, k))
        for j, w in enumerate(e.windows)
        for k in ("start", "end")
    ]
    named += [(f"{p}{k}", getattr(e, k)) for k in ("announce_time", "confirm_deadline")]
    for path, t in named:
        if t is not None and not YEAR_MIN <= t.year <= YEAR_MAX:
            yield DrProblem(path, f"must be in the years {YEAR_MIN}-{YEAR_MAX}", t)
    aware = [w for w in e.windows if w.start.tzinfo and w.end.tzinfo]
    if not aware:
        return
    first = min(w.start for w in aware)
    last = max(w.end for w in aware)
    if e.confirm_deadline is not None and _aware(e.confirm_deadline) and e.confirm_deadline > first:
        yield DrProblem(
            f"{p}confirm_deadline",
            f"must not be after the first window's start ({first.isoformat()})",
            e.confirm_deadline,
        )
    if e.announce_time is not None and _aware(e.announce_time):
        if e.announce_time > last:
            yield DrProblem(
                f"{p}announce_time",
                f"must not be after the last window's end ({last.isoformat()})",
                e.announce_time,
            )
        dl = e.confirm_deadline
        if dl is not None and _aware(dl) and e.announce_time > dl:
            yield DrProblem(
                f"{p}announce_time",
                f"must not be after confirm_deadline ({dl.isoformat()})",
                e.announce_time,
            )
    if now is None:
        return
    for j, w in enumerate(e.windows):
        if not (_aware(w.start) and _aware(w.end)):
            continue
        if b.past is not None and w.end < now - b.past:
            yield DrProblem(
                f"{p}windows[{j}].end",
                f"must be at most {_days(b.past)} before now ({now.astimezone(UTC).isoformat()})",
                w.end,
            )
        if b.ahead is not None and w.start > now + b.ahead:
            yield DrProblem(
                f"{p}windows[{j}].start",
                f"must be at most {_days(b.ahead)} after now ({now.astimezone(UTC).isoformat()})",
                w.start,
            )


def _aware(t: datetime) -> bool:
    return t.tzinfo is not None


def _days(d: timedelta) -> str:
    days = d.total_seconds() / 86400
    return f"{days:g} days" if days != 1 else "1 day"


def _kw_problems(e: DemandResponseEvent, park: DrPark | None, p: str) -> Iterable[DrProblem]:
    top = park.exchange_range_kw if park else None
    bound = f"[0, {top:g}] kW (import_max_kw + export_max_kw)" if park else ">= 0"
    for f in ("requested_kw", "cleared_kw"):
        v = getattr(e, f)
        if v is not None and (v < 0 or (top is not None and v > top)):
            yield DrProblem(f"{p}{f}", f"must be in {bound}", float(v))
    if e.requested_kw == 0 and e.import_cap_kw is None and e.cleared_kw is None:
        yield DrProblem(
            f"{p}requested_kw", "must be > 0 (or give import_cap_kw or cleared_kw)", 0.0
        )
    cap = e.import_cap_kw
    if cap is not None and park and not -park.export_max_kw <= cap <= park.import_max_kw:
        yield DrProblem(
            f"{p}import_cap_kw",
            f"must be in [{-park.export_max_kw:g}, {park.import_max_kw:g}] kW (-export_max_kw "
            "to import_max_kw of the connection)",
            float(cap),
        )


def _terms_problems(e: DemandResponseEvent, b: DrBounds, p: str) -> Iterable[DrProblem]:
    for f in (
        "price_cap_cny_per_mwh",
        "price_floor_cny_per_mwh",
        "subsidy_cny_per_kwh",
        "subsidy_cny_per_kw",
        "nonperformance_cny_per_kwh",
    ):
        v = getattr(e, f)
        if v is not None and v < 0:
            yield DrProblem(f"{p}{f}", "must be >= 0", float(v))
    cap, floor = e.price_cap_cny_per_mwh, e.price_floor_cny_per_mwh
    if cap is not None and floor is not None and floor > cap:
        yield DrProblem(
            f"{p}price_floor_cny_per_mwh",
            f"must not exceed price_cap_cny_per_mwh ({cap:g})",
            float(floor),
        )
    lo, hi = e.effective_band_frac
    if not 0 <= lo <= hi <= b.band_max_frac:
        yield DrProblem(
            f"{p}effective_band_frac",
            f"expected 0 <= low <= high <= {b.band_max_frac:g}",
            [float(lo), float(hi)],
        )
    if not timedelta(0) <= e.min_duration <= b.min_duration_max:
        yield DrProblem(
            f"{p}min_duration", f"must be in [0, {_minutes(b.min_duration_max)}]", e.min_duration
        )

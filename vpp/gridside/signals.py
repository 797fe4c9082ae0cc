"""OpenADR signals to the park's DR events: the documented mapping rule, pure computation.

Both VENs (2.0b and 3) reduce an event to :class:`Interval` rows (start, duration, signal name
and type, payload in the signal's unit) and call :func:`dr_fields`. The rule:

=======================  =================================  ===============================
signal (name / type)     payload                            DR event
=======================  =================================  ===============================
LOAD_DISPATCH / delta    change of load, kW (< 0 reduce)    < 0: peak shaving,
  (3: IMPORT_CAPACITY_    (scale applied: W, kW, MW)        ``requested_kw`` = -payload;
  SUBSCRIPTION deltas)                                      > 0: valley filling,
                                                            ``requested_kw`` = payload
LOAD_DISPATCH / setpoint import target, kW                  peak shaving, cap-only:
  (3: IMPORT_CAPACITY_                                      ``import_cap_kw`` = payload
  LIMIT)
LOAD_CONTROL /           fraction 0-1 of the connection's   peak shaving, cap-only:
  x-loadControlCapacity  import limit                       ``import_cap_kw`` = frac x limit
SIMPLE / level           0-3 (3: SIMPLE)                    level 0: no call; level L:
                                                            peak shaving, ``requested_kw`` =
                                                            ``level_kw[L]`` when configured,
                                                            else L/3 of the park's downward
                                                            flexibility (baseline - lowest
                                                            import, the least over the
                                                            call's intervals in the plan)
anything else (prices)   -                                  not a DR call: refused (opt out)
=======================  =================================  ===============================

Consecutive intervals asking the same thing form one window; a call whose intervals ask
different things becomes one DR event per distinct ask (``<id>``, ``<id>.2``, ``<id>.3`` ...),
each with its windows, so each is planned and settled on its own kW. Contract type: the
VEN's ``contract_type``, per program (market context) in ``programs``. Call class by the
notice given (start - announce): at least 12 h day-ahead, 1 h intraday, 15 min hour-level,
else minute-level. An invitation's confirm deadline is ``confirm_lead_minutes`` before its
first window (never before it was announced).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

SCALE = {"none": 1e-3, "": 1e-3, "k": 1.0, "M": 1e3, "G": 1e6, "m": 1e-6}  # W x -> kW
ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


class SignalError(ValueError):
    """A signal the park does not act on; the message says why (the VEN opts out)."""


@dataclass(frozen=True)
class Interval:
    """One interval of an OpenADR event's signal: ``start``, ``duration``, the signal's
    ``name`` and ``type``, ``payload`` and, for power, the unit's ``scale`` (SI prefix of W;
    ``"k"`` = kW; None: the payload is in kW)."""

    start: datetime
    duration: timedelta
    name: str
    type: str
    payload: float
    scale: str | None = None


@dataclass(frozen=True)
class MappingContext:
    """What the rule needs to know about the park and the VEN's terms.

    import_limit_kw : the connection's import limit (kW).
    down_flex_kw : ``(start, end) -> kW``, the park's downward flexibility over a window
        (for SIMPLE levels without ``level_kw``).
    level_kw : kW per SIMPLE level 1-3 (index 0 unused); None: fractions of the flexibility.
    contract_type, programs : the default contract and contracts per program.
    confirm_lead_minutes : an invitation's confirm deadline before its first window.
    issuer : stored with the event.
    tz : the park's time zone: the event's times are stored in it, as the API shows them.
    """

    import_limit_kw: float
    down_flex_kw: Callable[[datetime, datetime], float]
    level_kw: Sequence[float] | None = None
    contract_type: str = "pre_agreed"
    programs: dict[str, str] = field(default_factory=dict)
    confirm_lead_minutes: float = 0.0
    issuer: str = "OpenADR VTN"
    tz: str = "Asia/Shanghai"


def _kw(iv: Interval) -> float:
    factor = 1.0 if iv.scale is None else SCALE.get(iv.scale)
    if factor is None:
        raise SignalError(f"unknown scale {iv.scale!r} of a power payload")
    return float(iv.payload) * factor


def ask(iv: Interval, ctx: MappingContext) -> dict[str, Any] | None:
    """What one interval asks (the DR fields that depend on it), None for no call."""
    name, kind = iv.name.upper(), iv.type
    if not math.isfinite(float(iv.payload)):
        raise SignalError(f"{iv.name}/{iv.type}: payload {iv.payload!r} is not a number")
    if name == "LOAD_DISPATCH" and kind == "delta":
        kw = _kw(iv)
        if abs(kw) < 1e-6:
            return None
        if kw < 0:
            return {"direction": "peak_shaving", "requested_kw": -kw}
        return {"direction": "valley_filling", "requested_kw": kw}
    if name == "LOAD_DISPATCH" and kind == "setpoint":
        return {"direction": "peak_shaving", "requested_kw": 1.0, "import_cap_kw": _kw(iv)}
    if name == "LOAD_CONTROL" and kind == "x-loadControlCapacity":
        frac = float(iv.payload)
        if not 0.0 <= frac <= 1.0:
            raise SignalError(f"x-loadControlCapacity {frac:g} is not a fraction in [0, 1]")
        cap = round(frac * ctx.import_limit_kw, 3)
        return {"direction": "peak_shaving", "requested_kw": 1.0, "import_cap_kw": cap}
    if name == "SIMPLE" and kind == "level":
        level = round(float(iv.payload))
        if not 0 <= level <= 3:
            raise SignalError(f"SIMPLE level {iv.payload:g} is not 0-3")
        if level == 0:
            return None
        if ctx.level_kw is not None:
            kw = float(ctx.level_kw[level])
        else:
            kw = level / 3.0 * ctx.down_flex_kw(iv.start, iv.start + iv.duration)
        if kw <= 0:
            raise SignalError(
                f"SIMPLE level {level}: the park has no downward flexibility to offer"
            )
        return {"direction": "peak_shaving", "requested_kw": round(kw, 3)}
    raise SignalError(f"signal {iv.name}/{iv.type} is not a DR call the park acts on")


def call_class(announced: datetime, start: datetime) -> str:
    """The DR call class by the notice given."""
    notice = start - announced
    if notice >= timedelta(hours=12):
        return "day_ahead"
    if notice >= timedelta(hours=1):
        return "intraday"
    if notice >= timedelta(minutes=15):
        return "hour_level"
    return "minute_level"


def safe_id(text: str) -> str:
    """An event id the park's checks accept (``[A-Za-z0-9._:-]``, at most 100 characters)."""
    return ID_UNSAFE.sub("_", text)[:100]


def dr_fields(
    event_id: str,
    intervals: Sequence[Interval],
    ctx: MappingContext,
    announced: datetime,
    program: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The DR events (the REST body's fields) an OpenADR event becomes.

    Parameters
    ----------
    event_id : the DR event id (``<prefix><VTN's event id>``; sub-events get ``.2``, ``.3``).
    intervals : the event's intervals, in any order.
    ctx : the park and the VEN's terms.
    announced : when the VTN created (or last modified) the event.
    program : its program (market context), which may set the contract type.
    extra : fields added to every event (e.g. price terms).

    Returns
    -------
    list of dict
        Empty when no interval asks for anything (every one at level 0). Raises
        :class:`SignalError` when an interval is not a DR call the park acts on.
    """
    zone = ZoneInfo(ctx.tz)
    announced = announced.astimezone(zone)
    asks: list[tuple[datetime, datetime, tuple]] = []
    for iv in sorted(intervals, key=lambda x: x.start):
        a = ask(iv, ctx)
        if a is None:
            continue
        start = iv.start.astimezone(zone)
        asks.append((start, start + iv.duration, tuple(sorted(a.items()))))
    groups: dict[tuple, list[list[datetime]]] = {}
    for start, end, key in asks:
        wins = groups.setdefault(key, [])
        if wins and wins[-1][1] == start:
            wins[-1][1] = end  # consecutive intervals with the same ask: one window
        else:
            wins.append([start, end])
    contract = ctx.programs.get(program or "", ctx.contract_type)
    out = []
    for n, (key, wins) in enumerate(groups.items(), start=1):
        first = min(w[0] for w in wins)
        f: dict[str, Any] = {
            "event_id": safe_id(event_id if n == 1 else f"{event_id}.{n}"),
            **dict(key),
            "windows": [{"start": a.isoformat(), "end": b.isoformat()} for a, b in wins],
            "issuer": ctx.issuer[:100],
            "contract_type": contract,
            "call_class": call_class(announced, first),
            "announce_time": min(announced, first).isoformat(),
        }
        if contract == "invitation":
            deadline = first - timedelta(minutes=ctx.confirm_lead_minutes)
            f["confirm_deadline"] = max(deadline, min(announced, first)).isoformat()
        f.update(extra or {})
        out.append(f)
    return out

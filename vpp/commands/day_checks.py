"""The commands' guard on the days they plan: inside the tariff's validity and in years whose
public holidays are known (:mod:`vpp.park.coverage`), unless the user opts out.

``--allow-outside-tariff`` prices days outside ``valid_from .. valid_to`` with the tariff all
the same; ``--allow-unknown-calendar`` plans a year nobody's calendar knows with weekends as
rest days and weekdays as workdays. Either way a one-line warning goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime

from vpp.errors import UserError
from vpp.park.coverage import calendar_problem, series_problems, tariff_problem
from vpp.park.model import Site

TARIFF_FLAG = "--allow-outside-tariff"
CALENDAR_FLAG = "--allow-unknown-calendar"


def add_flags(p: argparse.ArgumentParser, tariff: bool = True) -> None:
    """The opt-outs (``tariff=False``: a command that prices nothing, e.g. carbon)."""
    if tariff:
        p.add_argument(
            TARIFF_FLAG,
            action="store_true",
            help="price days outside the tariff's valid_from .. valid_to with it anyway "
            "(a warning instead of an error)",
        )
    p.add_argument(
        CALENDAR_FLAG,
        action="store_true",
        help="plan days in a year whose public holidays neither chinese-calendar nor the "
        "park's calendar: knows, as ordinary weekdays and weekends (a warning instead of "
        "an error)",
    )


def problems(site: Site, first: date, last: date, tariff: bool = True) -> list[tuple[str, str]]:
    """``(flag, line)`` of every day problem of ``first .. last`` (inclusive)."""
    out = []
    if tariff and (line := tariff_problem(site, first, last)) is not None:
        out.append((TARIFF_FLAG, line))
    if (line := calendar_problem(site, first, last)) is not None:
        out.append((CALENDAR_FLAG, line))
    return out


def _allowed(args: argparse.Namespace, flag: str) -> bool:
    return bool(getattr(args, flag.removeprefix("--").replace("-", "_"), False))


def check_days(
    site: Site, first: date, last: date, args: argparse.Namespace, tariff: bool = True
) -> list[str]:
    """Stop (:class:`UserError`) on a problem the user has not allowed; print a warning for
    each allowed one. Returns the warnings."""
    found = problems(site, first, last, tariff)
    refused = [
        f"{line} (pass {flag} to plan it anyway)"
        for flag, line in found
        if not _allowed(args, flag)
    ]
    if refused:
        raise UserError("\n".join(refused))
    warnings = [f"warning: {line} ({flag} given)" for flag, line in found]
    for w in warnings:
        print(w, file=sys.stderr)
    return warnings


def check_series(site: Site, start: datetime, end: datetime) -> None:
    """Stop (:class:`UserError`) when a required price or emission-factor series does not
    cover the run ``[start, end)`` and its last plan's look-ahead
    (:func:`vpp.park.coverage.series_problems`)."""
    found = series_problems(site, start, end)
    if found:
        raise UserError("\n".join(found))

"""How the command line writes its log lines: ISO 8601 with the offset, in the park's zone.

One time convention in all output (logs, the API, the CLI): ISO 8601 with its UTC offset,
in the park's local zone (``site.location.tz``; ``Asia/Shanghai`` until a park is loaded).
A log line then reads like a cycle line: ``2026-07-15T08:00:00.123+08:00``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from vpp.park.model import DEFAULT_TZ

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class ZonedFormatter(logging.Formatter):
    """``asctime`` as ISO 8601 with offset in a time zone (milliseconds)."""

    def __init__(self, fmt: str = FORMAT, tz: str = DEFAULT_TZ):
        super().__init__(fmt)
        self.zone = ZoneInfo(tz)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, self.zone).isoformat(timespec="milliseconds")


def configure(level: int, tz: str = DEFAULT_TZ) -> None:
    """Root logging to stderr with :class:`ZonedFormatter`."""
    logging.basicConfig(level=level)
    for h in logging.getLogger().handlers:
        h.setFormatter(ZonedFormatter(tz=tz))


def set_zone(tz: str) -> None:
    """Log in the park's zone once it is known (``vpp run`` after loading the park)."""
    for h in logging.getLogger().handlers:
        if isinstance(h.formatter, ZonedFormatter):
            h.formatter.zone = ZoneInfo(tz)

"""Log lines carry ISO 8601 with the offset, in the park's zone, as cycle lines do."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from vpp.commands.logs import ZonedFormatter


def _line(fmt: ZonedFormatter, at: datetime) -> str:
    rec = logging.LogRecord("vpp.test", logging.INFO, __file__, 1, "hello", None, None)
    rec.created = at.timestamp()
    return fmt.format(rec)


def test_a_log_line_is_iso_8601_with_the_parks_offset() -> None:
    at = datetime(2026, 7, 15, 0, 0, 0, 123000, tzinfo=UTC)
    assert _line(ZonedFormatter(), at) == "2026-07-15T08:00:00.123+08:00 INFO vpp.test: hello"
    utc = _line(ZonedFormatter(tz="UTC"), at)
    assert utc.startswith("2026-07-15T00:00:00.123+00:00 ")

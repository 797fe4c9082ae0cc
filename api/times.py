"""One time convention in everything the API answers: ISO 8601 with its UTC offset, in the
park's zone (``site.location.tz``), as the logs and the command line write it.

The stores hand back UTC and clients may send any offset; :class:`ParkJSONResponse` rewrites
every datetime and every ISO 8601 date-time string with an offset in a response to the
park's zone on its way out (the instant is unchanged, only how it is written), so that no
route can forget it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.responses import JSONResponse

from vpp.park.model import DEFAULT_TZ

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")


def localise(value: Any, zone: ZoneInfo) -> Any:
    """``value`` with every aware datetime (object or ISO string) written in ``zone``."""
    if isinstance(value, str):
        if len(value) < 40 and _ISO.match(value):
            try:
                t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
            return t.astimezone(zone).isoformat()
        return value
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dict):
        return {k: localise(v, zone) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], int | float) and isinstance(value[-1], int | float):
            return value  # a numeric series (the API's lists are of one kind)
        return [localise(v, zone) for v in value]
    return value


class ParkJSONResponse(JSONResponse):
    """A JSON response whose times are written in the park's zone (:data:`zone`)."""

    zone: ZoneInfo = ZoneInfo(DEFAULT_TZ)

    def render(self, content: Any) -> bytes:
        return super().render(localise(content, self.zone))


def response_class(tz: str) -> type[ParkJSONResponse]:
    """The response class of one park's app."""
    return type("ParkJSONResponse", (ParkJSONResponse,), {"zone": ZoneInfo(tz)})

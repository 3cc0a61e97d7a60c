"""Time-range query parameters of the lists (``start_time``/``end_time``) and of candles
(``start``/``end``): RFC 3339 with an explicit offset (``Z`` or ``+hh:mm``; send ``+`` as
``%2B`` in a query string). A value that is not one, or a range whose start is after its end,
is a 400 ``validation_error`` naming the field."""
from __future__ import annotations

import re
from datetime import datetime

from drf_spectacular.utils import OpenApiParameter

from . import errors

# Date, ``T``, time with optional fraction, offset: what RFC 3339 section 5.6 allows.
_RFC3339 = re.compile(
    r"\A\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_time(params, name: str) -> datetime | None:
    """The RFC 3339 time in query parameter ``name``, or None when absent."""
    raw = params.get(name)
    if raw is None:
        return None
    moment = None
    if _RFC3339.match(raw):
        text = raw.upper().replace("Z", "+00:00")
        head, dot, rest = text.partition(".")
        if dot:  # Python reads at most microseconds: cut a longer fraction (truncating)
            digits = re.match(r"\d+", rest)
            assert digits is not None  # the pattern above put digits after the dot
            text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end():]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
    if moment is None:
        raise errors.ValidationError.field(
            name, "invalid",
            f"{name} must be an RFC 3339 time with an offset, e.g. 2026-11-23T18:00:00Z (send + as %2B).",
        )
    return moment


def parse_range(params, start: str = "start_time", end: str = "end_time") -> tuple[datetime | None, datetime | None]:
    """``(start, end)`` from the query; a start after the end names ``start``."""
    low, high = parse_time(params, start), parse_time(params, end)
    if low is not None and high is not None and low > high:
        raise errors.ValidationError.field(start, "after_end", f"{start} must not be after {end}.")
    return low, high


def filter_range(queryset, params, field: str = "created_at"):
    """``queryset`` limited to ``start_time <= field <= end_time`` (each bound optional)."""
    low, high = parse_range(params)
    if low is not None:
        queryset = queryset.filter(**{f"{field}__gte": low})
    if high is not None:
        queryset = queryset.filter(**{f"{field}__lte": high})
    return queryset


TIME_RANGE_PARAMETERS = [
    OpenApiParameter("start_time", str, description=(
        "Only rows created at or after this time (RFC 3339, e.g. `2026-11-23T18:00:00Z`).")),
    OpenApiParameter("end_time", str, description=(
        "Only rows created at or before this time (RFC 3339); not before `start_time`.")),
]
TIME_RANGE_NAMES = ("start_time", "end_time")

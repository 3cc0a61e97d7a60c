"""How values look on the wire: decimal strings for money, RFC 3339 UTC with microseconds
for time. Every transport renders through these so REST, WebSocket and FIX agree."""
from datetime import UTC, datetime
from decimal import Decimal
from typing import overload


@overload
def money(value: Decimal, scale: int) -> str: ...
@overload
def money(value: Decimal | None, scale: int) -> str | None: ...
def money(value: Decimal | None, scale: int) -> str | None:
    """``value`` as a decimal string with exactly ``scale`` places (``"0.0100"``)."""
    if value is None:
        return None
    return format(value.quantize(Decimal(1).scaleb(-scale)), "f")


def rate(value: Decimal) -> str:
    """A rate (fee) as its shortest exact decimal string (``"0.001"``)."""
    return format(value.normalize(), "f")


@overload
def timestamp(moment: datetime) -> str: ...
@overload
def timestamp(moment: datetime | None) -> str | None: ...
def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""Cursor pagination for every list: ``?limit=`` (1-1000, default 100) and ``?cursor=``.

The cursor is an opaque token encoding the ordering key of the last row returned, so pages
stay stable while rows are inserted (no offsets). Body: ``{"results", "next_cursor"}``.
"""
import base64
import binascii
import json

from exchange import errors
from exchange.syntax import ascii_digits, json_loads, parse_id

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def parse_limit(params) -> int:
    raw = params.get("limit")
    if raw is None:  # absent; `limit=` with no value is refused below, like any non-integer
        return DEFAULT_LIMIT
    limit = int(raw) if ascii_digits(raw, 4) else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.ValidationError.field("limit", "invalid", f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return limit


def encode_cursor(position) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(token: str):
    try:
        padded = token + "=" * (-len(token) % 4)
        return json_loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise errors.ValidationError.field("cursor", "invalid", "cursor is not one this API issued.") from None


def paginate(queryset, params, *, key: str, descending: bool = False):
    """Return ``(rows, next_cursor)`` for a queryset ordered by the unique field ``key``.

    ``key`` must be unique and indexed (``id``, ``symbol``); the cursor carries its value.
    """
    limit = parse_limit(params)
    token = params.get("cursor")
    order = f"-{key}" if descending else key
    queryset = queryset.order_by(order)
    if token:
        after = decode_cursor(token)
        # A cursor carries the key's own type: an integer for ``id``, a string for a code.
        expected = int if key == "id" else str
        if type(after) is not expected or (expected is int and parse_id(after) is None):
            raise errors.ValidationError.field("cursor", "invalid", "cursor is not one this API issued.")
        queryset = queryset.filter(**{f"{key}__{'lt' if descending else 'gt'}": after})
    rows = list(queryset[: limit + 1])
    next_cursor = encode_cursor(getattr(rows[limit - 1], key)) if len(rows) > limit else None
    return rows[:limit], next_cursor

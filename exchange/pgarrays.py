"""PostgreSQL arrays as ONE text parameter, for set-based statements (``unnest(%s::numeric[])``).

psycopg adapts a Python list element by element in Python (and Django's ``bulk_create`` binds
every column as such a list): for settlement's chunks that adaptation cost more than the rest
of the write. These build the array's text instead, bound as one parameter and cast in the
statement; Decimals are written in full (``format(d, "f")``), so the cast to ``numeric`` is
exact.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal


def _element(value: object) -> str:
    """One element: NULL, or the value double-quoted (backslashes and quotes escaped)."""
    if value is None:
        return "NULL"
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(values: Iterable[object]) -> str:
    """``values`` (text, Decimals, ints or None) as the text of a PostgreSQL array."""
    return "{" + ",".join(map(_element, values)) + "}"


def int_array(values: Iterable[int]) -> str:
    """Integers (never None) as the text of a PostgreSQL array."""
    return "{" + ",".join(map(str, values)) + "}"

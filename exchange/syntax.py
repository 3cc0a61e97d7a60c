"""Small lexical checks every transport shares.

Python's ``str.isdigit()`` and ``\\d`` accept any Unicode digit (``"²"``, ``"١٢"``), and ``$``
matches before a trailing newline; on the wire Bourse takes ASCII digits only and anchors
patterns at the true end (``\\Z`` or ``fullmatch``). ``json_loads`` turns the recursion error a
deeply nested document raises into the ``ValueError`` every caller already handles.
"""
from __future__ import annotations

import json
import re
from typing import TypeGuard

_DIGITS = re.compile(r"[0-9]+")
# Ids are 64-bit signed integers in the database; a longer string cannot name a row.
MAX_ID_DIGITS = 18


def ascii_digits(text: object, max_digits: int | None = None) -> TypeGuard[str]:
    """Whether ``text`` is a non-empty string of ASCII digits (at most ``max_digits``)."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        return False
    return max_digits is None or len(text) <= max_digits


def parse_id(text) -> int | None:
    """A database id from its wire form, or ``None`` when it cannot be one."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if 0 < text < 2**63 else None
    if not ascii_digits(text, MAX_ID_DIGITS) or int(text) == 0:
        return None
    return int(text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL): no identifier, symbol, code or
    number Bourse takes on the wire does, and PostgreSQL cannot store NUL at all."""
    return _CONTROL.search(text) is not None


def nul_path(value: object, path: str = "") -> str | None:
    """Where in a parsed JSON document a string (or key) holds NUL, or None. PostgreSQL's text
    cannot hold NUL, so such input is refused at the edge (400), never reaching a query."""
    if isinstance(value, str):
        return path or "(document)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def json_loads(data):
    """``json.loads`` that raises ``ValueError`` (not ``RecursionError``) on deep nesting."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None

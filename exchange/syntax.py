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


def json_loads(data):
    """``json.loads`` that raises ``ValueError`` (not ``RecursionError``) on deep nesting."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None

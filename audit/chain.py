"""The hash chain: how a sealed event's hash is computed from its content and its
predecessor's hash. Pure functions, shared by the sealer and by ``audit_verify``.

hash(n) = SHA-256( prev_hash(n) || "\\n" || canonical JSON of event n's content and seq )

The canonical JSON has sorted keys, no whitespace and UTF-8 text; times are RFC 3339 UTC
with microseconds. Everything that describes the event is covered (who, what, when, which
target, before/after, outcome, reason, source IP, request id, its id and chain position),
so altering any of it, reordering events or removing one breaks the chain at that event.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from exchange.wire import timestamp

GENESIS = "0" * 64
VERSION = 1

CONTENT_FIELDS = (
    "id",  # first: the sealer and audit_verify read an event as a row of these, its id at [0]
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "account_id",
    "before",
    "after",
    "outcome",
    "reason",
    "source_ip",
    "request_id",
)
SEAL_FIELDS = ("seq", "prev_hash", "hash", "sealed_at")


def canonical(event, seq: int) -> bytes:
    return canonical_content(tuple(getattr(event, name) for name in CONTENT_FIELDS), seq)


def canonical_content(values: Sequence[Any], seq: int) -> bytes:
    """The canonical JSON of an event's content given as values in ``CONTENT_FIELDS`` order
    (how ``audit_verify`` reads them: one row per event, no model instance)."""
    content = dict(zip(CONTENT_FIELDS, values, strict=True))
    content["created_at"] = timestamp(content["created_at"])
    content["seq"] = seq
    content["v"] = VERSION
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event, seq: int, prev_hash: str) -> str:
    return _hash(canonical(event, seq), prev_hash)


def content_hash(values: Sequence[Any], seq: int, prev_hash: str) -> str:
    """``event_hash`` of an event read as values in ``CONTENT_FIELDS`` order."""
    return _hash(canonical_content(values, seq), prev_hash)


def _hash(canonical_json: bytes, prev_hash: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json)
    return digest.hexdigest()

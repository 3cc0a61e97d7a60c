"""Sealing the audit chain: what it does (``audit_seal``) and when it runs (``seal_soon``).

``audit_seal`` gives every committed, unsealed event its chain position and hash, in id
order, under one lock. It runs shortly after each audited commit, coalesced per process.

``seal_soon`` is registered with ``transaction.on_commit`` by ``audit_record``. Sealing
inline would add a second transaction to every audited request (and, on SQLite, a second
trip through the single write lock); instead the first commit arms a short timer and
every commit until it fires rides along, so a process seals at most once per
``BOURSE_AUDIT_SEAL_DELAY_MS`` however many events it writes, and no request waits for it.
The timer thread is not a daemon: a management command that exits right after writing
events still seals them. Celery beat runs ``audit_seal`` periodically as the backstop for
a process that died in between.

``BOURSE_AUDIT_SEAL_MODE``: ``thread`` (default), ``inline`` (seal in the on-commit
callback itself: deterministic, for tests), ``off`` (periodic sealing only).
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import chain
from .models import AuditEvent

log = logging.getLogger(__name__)

SEALER_LOCK_KEY = 0x6175646974  # "audit": the advisory lock only one sealer holds at a time

_lock = threading.Lock()
_timer: threading.Timer | None = None


def _reset_after_fork() -> None:
    global _lock, _timer
    _lock, _timer = threading.Lock(), None


os.register_at_fork(after_in_child=_reset_after_fork)


def _run_sealer() -> None:
    try:
        audit_seal()
    except Exception:  # the periodic run retries; a failed seal loses nothing
        log.exception("audit sealing failed")


def _fire() -> None:
    global _timer
    with _lock:
        _timer = None  # commits from now on arm a new timer
    try:
        _run_sealer()
    finally:
        connection.close()  # this thread's own connection


def seal_soon() -> None:
    global _timer
    mode = getattr(settings, "BOURSE_AUDIT_SEAL_MODE", "thread")
    if mode == "off":
        return
    if mode == "inline":
        _run_sealer()
        return
    with _lock:
        if _timer is not None:
            return
        delay = int(getattr(settings, "BOURSE_AUDIT_SEAL_DELAY_MS", 200)) / 1000
        _timer = threading.Timer(delay, _fire)
        _timer.name = "audit-sealer"
        _timer.start()


def _take_sealer_lock() -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEALER_LOCK_KEY])
            return bool(cursor.fetchone()[0])
    # SQLite: the transaction already holds the database's single write lock (BEGIN
    # IMMEDIATE), so two sealers cannot interleave.
    return True


def _seal_batch(limit: int) -> int | None:
    with transaction.atomic():
        if not _take_sealer_lock():
            return None
        # A sealed event (seq not null) always has its hash.
        head = cast(
            "tuple[int, str] | None",
            AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").values_list("seq", "hash").first(),
        )
        seq, prev_hash = head or (0, chain.GENESIS)
        batch = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:limit])
        now = timezone.now()
        for event in batch:
            seq += 1
            event.seq, event.prev_hash, event.sealed_at = seq, prev_hash, now
            event.hash = prev_hash = chain.event_hash(event, seq, event.prev_hash)
        if batch:
            _write_seals(batch, now)
        return len(batch)


def _write_seals(batch: list[AuditEvent], sealed_at: datetime) -> None:
    """One UPDATE joining a VALUES list (a hash join; Django's bulk_update builds CASE
    expressions that grow with the square of the batch)."""
    table = AuditEvent._meta.db_table
    columns = ([e.pk for e in batch], [e.seq for e in batch], [e.prev_hash for e in batch], [e.hash for e in batch])
    if connection.vendor == "postgresql":
        # Four array parameters rather than 4 × batch placeholders: nothing to parse per row.
        seal = "unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS seal(id, seq, prev_hash, hash)"
        sql = (
            f"UPDATE {table} SET seq = seal.seq, prev_hash = seal.prev_hash, hash = seal.hash, sealed_at = %s "
            f"FROM {seal} WHERE {table}.id = seal.id"
        )
        params: list[Any] = [sealed_at, *columns]
    else:
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(batch))
        sql = (
            f"WITH seal(id, seq, prev_hash, hash) AS (VALUES {rows}) "
            f"UPDATE {table} SET seq = seal.seq, prev_hash = seal.prev_hash, hash = seal.hash, "
            f"sealed_at = %s FROM seal WHERE {table}.id = seal.id"
        )
        params = [value for row in zip(*columns, strict=True) for value in row] + [sealed_at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # (SQLite's driver reports -1 for a statement that starts with WITH.)
        if cursor.rowcount not in (-1, len(batch)):
            raise RuntimeError(f"sealed {cursor.rowcount} of {len(batch)} audit events")


def audit_seal(*, batch_size: int = 500) -> int:
    """Seal every committed, unsealed event in insertion (id) order: assign the next chain
    position and hash = H(previous hash, event). Returns how many were sealed; 0 when
    another sealer holds the lock (it will seal these too, or the next run will)."""
    sealed = 0
    while True:
        count = _seal_batch(batch_size)
        if count is None:
            return sealed
        sealed += count
        if count < batch_size:
            return sealed

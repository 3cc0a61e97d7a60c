"""Sealing the audit chain: what it does (``audit_seal``) and when it runs (``seal_soon``).

``audit_seal`` gives every committed, unsealed event its chain position and hash, in id
order, under one lock. It runs shortly after each audited commit, coalesced per process.

``seal_soon`` is registered with ``transaction.on_commit`` by ``audit_record``. Sealing
inline would add a second transaction to every audited request (and, on SQLite, a second
trip through the single write lock); instead the first commit wakes the process's sealer
thread, which waits ``BOURSE_AUDIT_SEAL_DELAY_MS`` while every later commit rides along, so
a process seals at most once per that delay however many events it writes, and no request
waits for it. A process that exits with a seal due seals at exit. Celery beat runs ``audit_seal`` periodically as the backstop for
a process that died in between.

``BOURSE_AUDIT_SEAL_MODE``: ``thread`` (default), ``inline`` (seal in the on-commit
callback itself: deterministic, for tests), ``off`` (periodic sealing only).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from . import chain
from .models import AuditEvent, AuditPending, AuditSeal

log = logging.getLogger(__name__)

SEALER_LOCK_KEY = 0x6175646974  # "audit": the advisory lock only one sealer holds at a time

_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_armed = False  # a seal is due: set by the first commit, cleared when the sealer starts sealing
_sealing = threading.Lock()  # held by the sealer thread while it seals


def _reset_after_fork() -> None:
    global _lock, _wake, _thread, _armed, _sealing
    _lock, _wake, _thread, _armed, _sealing = threading.Lock(), threading.Event(), None, False, threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _run_sealer() -> None:
    try:
        audit_seal()
    except Exception:  # the periodic run retries; a failed seal loses nothing
        log.exception("audit sealing failed")
        connection.close()  # a broken connection is replaced on the next seal


def _sealer_loop() -> None:
    """The process's sealer thread: sleeps until a commit arms it, lets the commits of the
    next ``BOURSE_AUDIT_SEAL_DELAY_MS`` ride along, seals them all, and sleeps again. It keeps
    its database connection between seals (a thread per seal connected afresh each time: a
    PostgreSQL backend forked five times a second per busy process)."""
    global _armed
    while True:
        _wake.wait()
        _wake.clear()
        time.sleep(int(getattr(settings, "BOURSE_AUDIT_SEAL_DELAY_MS", 200)) / 1000)
        with _sealing:
            with _lock:
                _armed = False  # commits from now on arm the next seal
            _run_sealer()  # on its own connection, kept (a failed seal closes it; the next reconnects)


def _seal_at_exit() -> None:
    """A process that exits with a seal armed (a management command that wrote events just
    before returning) seals them itself: the sealer thread is a daemon and dies with it. A seal
    in progress is let finish first."""
    if _sealing.acquire(timeout=10):
        _sealing.release()
    if _armed:
        _run_sealer()


atexit.register(_seal_at_exit)


def seal_soon() -> None:
    global _thread, _armed
    mode = getattr(settings, "BOURSE_AUDIT_SEAL_MODE", "thread")
    if mode == "off":
        return
    if mode == "inline":
        _run_sealer()
        return
    with _lock:
        if _armed:
            return
        _armed = True
        if _thread is None:
            _thread = threading.Thread(target=_sealer_loop, name="audit-sealer", daemon=True)
            _thread.start()
    _wake.set()


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
        head = AuditSeal.objects.order_by("-seq").values_list("seq", "hash").first()
        seq, prev_hash = head or (0, chain.GENESIS)
        # The queue's committed rows, oldest event first: the queue's first ``limit`` ids (its
        # primary key, in order), then those events by theirs — never a walk of the events.
        queued = AuditPending.objects.order_by("event_id").values("event_id")[:limit]
        # Read as tuples of the hashed content (chain.CONTENT_FIELDS, the id first): no model
        # instance per event.
        batch = list(
            AuditEvent.objects.filter(id__in=Subquery(queued)).order_by("id").values_list(*chain.CONTENT_FIELDS)
        )
        seals: list[tuple[int, int, str, str]] = []  # (event id, seq, prev_hash, hash): no model per seal
        for content in batch:
            seq += 1
            digest = chain.content_hash(content, seq, prev_hash)
            seals.append((content[0], seq, prev_hash, digest))
            prev_hash = digest
        if seals:
            _write_seals(seals, timezone.now())
        return len(batch)


def _write_seals(seals: list[tuple[int, int, str, str]], sealed_at: datetime) -> None:
    """Append the seals and take their events off the queue. PostgreSQL: ONE statement, the
    columns bound as arrays (nothing to parse per row); SQLite: an insert and a delete."""
    ids, seqs, prev_hashes, hashes = (list(column) for column in zip(*seals, strict=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH sealed AS (INSERT INTO {AuditSeal._meta.db_table} (event_id, seq, prev_hash, hash, sealed_at) "
                f"SELECT s.event_id, s.seq, s.prev_hash, s.hash, %s "
                f"FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) AS s(event_id, seq, prev_hash, hash) "
                f"RETURNING event_id) "
                f"DELETE FROM {AuditPending._meta.db_table} p USING sealed WHERE p.event_id = sealed.event_id",
                [sealed_at, ids, seqs, prev_hashes, hashes],
            )
            dequeued = cursor.rowcount
    else:
        AuditSeal.objects.bulk_create(
            AuditSeal(event_id=pk, seq=seq, prev_hash=prev, hash=digest, sealed_at=sealed_at)
            for pk, seq, prev, digest in seals
        )
        dequeued, _ = AuditPending.objects.filter(event_id__in=ids).delete()
    if dequeued != len(seals):
        raise RuntimeError(f"sealed {len(seals)} audit events but took {dequeued} off the queue")


def audit_seal(*, batch_size: int = 500) -> int:
    """Seal every committed event on the queue in insertion (id) order: append its seal —
    the next chain position and hash = H(previous hash, event) — and take it off the
    queue. Returns how many were sealed; 0 when another sealer holds the lock (it will seal
    these too, or the next run will)."""
    sealed = 0
    while True:
        count = _seal_batch(batch_size)
        if count is None:
            return sealed
        sealed += count
        if count < batch_size:
            return sealed

"""When sealing runs: shortly after each audited commit, coalesced per process.

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

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

_lock = threading.Lock()
_timer: threading.Timer | None = None


def _reset_after_fork() -> None:
    global _lock, _timer
    _lock, _timer = threading.Lock(), None


os.register_at_fork(after_in_child=_reset_after_fork)


def _run_sealer() -> None:
    from .services import audit_seal

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

"""Role heartbeats (``exchange.models.Heartbeat``): one row per process and role, its
``beat_at`` refreshed every ``BOURSE_HEARTBEAT_S`` seconds from the role's own loop, so a
process that is alive but stuck stops beating too. Readiness reads them
(``trading.operations``). Beating never breaks a role: a failure is logged and retried on the
next beat."""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Heartbeat

log = logging.getLogger("bourse.heartbeat")

PRUNE_AFTER = timedelta(days=1)  # rows of processes gone that long are deleted


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(role: str, details: dict | None = None, *, started_at=None) -> None:
    """Record that this process runs ``role`` now (one UPDATE; an INSERT the first time)."""
    now = timezone.now()
    instance = instance_id()
    updated = Heartbeat.objects.filter(role=role, instance=instance).update(beat_at=now, details=details or {})
    if not updated:
        Heartbeat.objects.filter(role=role, beat_at__lt=now - PRUNE_AFTER).delete()
        Heartbeat.objects.bulk_create(
            [Heartbeat(role=role, instance=instance, started_at=started_at or now, beat_at=now, details=details or {})],
            ignore_conflicts=True,
        )


class Beater:
    """Calls ``beat`` at most every ``BOURSE_HEARTBEAT_S`` seconds from a role's loop."""

    def __init__(self, role: str, every: float | None = None):
        self.role = role
        self.every = settings.BOURSE_HEARTBEAT_S if every is None else every
        self.started_at = timezone.now()
        self._last = float("-inf")
        self._failing = False

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def maybe(self, details: Callable[[], dict] | None = None) -> None:
        if not self.due():
            return
        self._last = time.monotonic()
        try:
            beat(self.role, details() if details else None, started_at=self.started_at)
            if self._failing:
                log.info("heartbeat recorded again", extra={"role": self.role})
            self._failing = False
        except Exception as exc:  # noqa: BLE001 -- the role goes on; readiness shows it stale
            if not self._failing:
                log.warning("could not record the heartbeat: %s", exc.__class__.__name__, extra={"role": self.role})
            self._failing = True
            if not connection.in_atomic_block:
                try:
                    connection.close_if_unusable_or_obsolete()
                except Exception:  # noqa: BLE001 -- best effort; the next beat reconnects
                    log.debug("closing the connection failed", exc_info=True)

"""The dead-man switch per API key (``POST /cancel-after``, the WebSocket op ``cancel_after``).

A client arms its key's switch with a timeout and re-arms it before the timeout runs out
(a heartbeat). If it does not, every live order of the key's account placed up to the
trigger time is cancelled with ``cancel_reason`` ``dead_man``. The deadline lives in the
database (``DeadManSwitch``), so a web process that restarts loses nothing, and the engine
process fires it (``deadman_fire_due``, called from its loop every ``CHECK_S`` and before it
takes any command after a start): a deadline that passed while no engine ran fires as soon
as one starts. Cancels go through the same engine commands as every other cancel.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from exchange import errors
from exchange.context import Actor

from ..models import DeadManSwitch, Order
from .orders import order_cancel_queue

if TYPE_CHECKING:
    from apikeys.models import ApiKey

log = logging.getLogger("bourse.deadman")

TIMEOUT_MIN_MS, TIMEOUT_MAX_MS = 1_000, 600_000
CHECK_S = 0.25  # how often the engine process looks for a switch that is due
DEADMAN = Actor.system("deadman")


@dataclass(frozen=True)
class DeadManState:
    current_time: datetime
    trigger_time: datetime | None  # None: disarmed


def deadman_timeout(value: object) -> int:
    """``timeout_ms`` as sent: 0 (disarm) or an integer from 1000 to 600000."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.ValidationError.field("timeout_ms", "invalid_type", "timeout_ms must be an integer (milliseconds)")
    if value != 0 and not TIMEOUT_MIN_MS <= value <= TIMEOUT_MAX_MS:
        raise errors.ValidationError.field(
            "timeout_ms", "out_of_range",
            f"timeout_ms must be 0 (disarm) or from {TIMEOUT_MIN_MS} to {TIMEOUT_MAX_MS}",
            allowed=f"0,{TIMEOUT_MIN_MS}-{TIMEOUT_MAX_MS}",
        )
    return value


def deadman_arm(*, key: ApiKey, timeout_ms: object) -> DeadManState:
    """Arm (re-arm) ``key``'s switch to fire ``timeout_ms`` from now, or disarm it with 0.

    Only changes of state are audited (armed from disarmed, disarmed): a heartbeat that
    re-arms an armed switch every second must not grow the audit trail."""
    timeout = deadman_timeout(timeout_ms)
    now = timezone.now()
    trigger = now + timedelta(milliseconds=timeout) if timeout else None
    with transaction.atomic(durable=True):
        switch = DeadManSwitch.objects.select_for_update().filter(key_id=key.pk).first()
        was_armed = switch is not None and switch.trigger_at is not None
        if switch is None:
            if trigger is None:
                return DeadManState(now, None)  # nothing armed, nothing to disarm
            DeadManSwitch.objects.create(key_id=key.pk, account_id=key.account_id, timeout_ms=timeout, trigger_at=trigger)
        else:
            DeadManSwitch.objects.filter(pk=switch.pk).update(timeout_ms=timeout, trigger_at=trigger, updated_at=now)
        if trigger is not None and not was_armed:
            audit_record("deadman.armed", target=key, account=key.account_id, after={"timeout_ms": timeout})
        elif trigger is None and was_armed:
            audit_record("deadman.disarmed", target=key, account=key.account_id)
    return DeadManState(now, trigger)


def deadman_fire_due(now: datetime | None = None, limit: int = 100) -> list[tuple[int, list[int]]]:
    """Fire every switch whose trigger time has passed (at most ``limit`` per call): queue a
    ``dead_man`` cancel for each live order of its account created up to the trigger time,
    and disarm it. Returns ``[(key pk, cancelled order ids)]``. Safe to run in several
    processes at once: each switch fires once (a row lock on PostgreSQL, SQLite's single
    writer), and a re-arm that commits first wins."""
    now = now or timezone.now()
    due = list(
        DeadManSwitch.objects.filter(trigger_at__lte=now).order_by("trigger_at").values_list("pk", flat=True)[:limit]
    )
    fired = []
    for key_pk in due:
        orders = _fire(key_pk, now)
        if orders is not None:
            fired.append((key_pk, orders))
    return fired


def _fire(key_pk: int, now: datetime) -> list[int] | None:
    with transaction.atomic(durable=True):
        due = DeadManSwitch.objects.filter(pk=key_pk, trigger_at__lte=now)
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)  # another engine process is firing it
        switch = due.select_related("key").first()
        if switch is None:
            return None  # re-armed or disarmed since it was read, or being fired elsewhere
        trigger = switch.trigger_at
        DeadManSwitch.objects.filter(pk=key_pk).update(trigger_at=None, fired_at=now, updated_at=now)
        orders = list(
            Order.objects.filter(account_id=switch.account_id, status__in=Order.LIVE_STATUSES, created_at__lte=trigger)
            .order_by("id")
        )
        order_cancel_queue(orders, reason="dead_man", actor=DEADMAN)
        audit_record(
            "deadman.fired", target=switch.key, account=switch.account_id, actor=DEADMAN,
            after={"trigger_time": trigger, "orders": [str(o.pk) for o in orders]},
        )
    log.info("dead-man switch fired", extra={"key_id": switch.key.key_id, "orders": len(orders)})
    return [o.pk for o in orders]

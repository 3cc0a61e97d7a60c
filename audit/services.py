"""Writing the audit trail. Every audited change calls ``audit_record`` once, inside the
transaction that makes the change, so the event exists exactly when the change does.

- ``audit_record(action, *, target, ...)`` — one event. Actor, request id and source IP
  come from ``exchange.context`` unless given; a refused attempt passes
  ``outcome="refused"`` and the reason.
- ``audit_refusals(action, ...)`` — wraps a service call; when it raises a ``BourseError``
  the refusal is recorded in its own transaction (the failed one rolled back).
- ``audit_auth_failure(source_ip, key_id, reason)`` — authentication failures, aggregated
  per source and window so a flood cannot fill the disk.
- ``audit_seal()`` — the sealer: gives committed events their chain position and hash.
- ``audit_flush_auth_failures()`` — writes the summaries of closed flood windows (failed
  authentications, and refusals aggregated with ``audit_refusals(aggregate=...)``).

Sealing happens after commit (``audit.sealer``) and periodically (Celery beat,
``manage.py audit_seal``); docs/architecture.md explains why it is not done inline.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import connection, models, transaction
from django.utils import timezone

from exchange.context import Actor, actor_var, request_id_var, source_ip_var
from exchange.errors import BourseError
from exchange.pgarrays import array_literal

from . import sealer
from .actions import ACTIONS
from .models import AuditEvent, AuthFailureWindow, Outcome
from .sealer import audit_seal as audit_seal  # the public service (re-exported); sealing lives in audit.sealer

log = logging.getLogger(__name__)

#: What ``jsonable`` returns: plain JSON data.
Json: TypeAlias = "None | bool | int | str | list[Json] | dict[str, Json]"



def _setting(name: str, default: object) -> Any:
    return getattr(settings, name, default)


def jsonable(value: object) -> Json:
    """``value`` as plain JSON data with one spelling per value, so that it reads back from
    either database exactly as it was hashed: decimals and floats become strings, times
    RFC 3339 strings, model instances their primary key."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (Decimal, float)):
        return format(value, "f") if isinstance(value, Decimal) else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time, UUID)):
        return str(value)
    if isinstance(value, models.Model):
        return jsonable(value.pk)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, models.QuerySet)):
        items = [jsonable(item) for item in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset, models.QuerySet)) else items
    return str(value)


def _actor(actor: object) -> Actor:
    if actor is None:
        return actor_var.get() or Actor.system()
    if isinstance(actor, Actor):
        return actor
    if hasattr(actor, "get_username"):
        return Actor.user(actor)
    raise TypeError(f"actor must be an Actor, a user or None, not {type(actor).__name__}")


def _target(target: models.Model | tuple[object, object] | None) -> tuple[str, str, int | None]:
    """(target_type, target_id, account_id implied by the target)."""
    if target is None:
        return "", "", None
    if isinstance(target, models.Model):
        label = target._meta.label_lower
        if label == "accounts.account":
            return label, str(target.pk), target.pk
        # A model may name itself by a public id (an API key by its key id, which customers
        # quote), so every event about it — created, changed, refused — has one target.
        ident = getattr(target, "audit_target_id", None) or target.pk
        return label, str(ident), getattr(target, "account_id", None)
    if isinstance(target, tuple) and len(target) == 2:
        return str(target[0]), "" if target[1] is None else str(target[1]), None
    raise TypeError("target must be a model instance or a (type, id) tuple")


def audit_record(
    action: str,
    *,
    target: models.Model | tuple[object, object] | None = None,
    account: models.Model | int | None = None,
    actor: object = None,
    before: object = None,
    after: object = None,
    outcome: str = Outcome.SUCCESS,
    reason: str = "",
    source_ip: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """Record one audit event and return it (unsealed; the sealer chains it after commit).

    ``target`` is the object acted on (a model instance, or ``(type, id)``); the account
    concerned is taken from it (an ``Account``, or anything with ``account_id``) unless
    ``account`` (instance or id) says otherwise. ``actor`` is an ``exchange.context.Actor``
    or a user; by default the current request's (``actor_var``), else the system.
    ``before``/``after`` hold the changed values (made JSON-safe here). Runs inside the
    caller's transaction when there is one — that is the point — and in its own otherwise
    (log-ins, authentication failures, refusals).
    """
    event = _event(action, target=target, account=account, actor=actor, before=before, after=after,
                   outcome=outcome, reason=reason, source_ip=source_ip, request_id=request_id)
    if connection.in_atomic_block:  # the caller's transaction: no savepoint needed
        event.save(force_insert=True)
        transaction.on_commit(sealer.seal_soon)
    else:
        with transaction.atomic():
            event.save(force_insert=True)
            transaction.on_commit(sealer.seal_soon)
    return event


def audit_event_build(
    action: str,
    *,
    target: models.Model | tuple[object, object] | None = None,
    account: models.Model | int | None = None,
    after: object = None,
) -> AuditEvent:
    """An unsaved event, checked and stamped like ``audit_record``'s, for a service that
    inserts it within a statement of its own (the order fast path writes it in the same
    statement as the order). The caller must call ``audit_events_written`` after commit."""
    return _event(action, target=target, account=account, after=after)


def audit_events_written() -> None:
    """Tell the sealer that events were committed outside ``audit_record``."""
    sealer.seal_soon()


def audit_record_many(
    action: str, targets: Iterable[models.Model], *, actor: object = None, after: object = None
) -> list[AuditEvent]:
    """Record one event per target in one INSERT, inside the caller's transaction (for
    services that act on many objects at once, e.g. settlement's fills). ``after`` may be
    a callable ``target -> dict``."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record_many belongs inside the transaction of the change")
    events = [
        _event(action, target=target, actor=actor, after=after(target) if callable(after) else after)
        for target in targets
    ]
    if events:
        AuditEvent.objects.bulk_create(events)
        transaction.on_commit(sealer.seal_soon)
    return events


def audit_record_rows(
    action: str, rows: Iterable[tuple[tuple[str, object], int | None, object]], *, actor: object = None
) -> int:
    """``audit_record_many`` for writers that hold no model instances: one event per
    ``((target_type, target_id), account_id, after)``, inserted by ONE statement on
    PostgreSQL (columns bound as arrays, no ``AuditEvent`` instance per row: settlement
    records two events per trade), by ``bulk_create`` on SQLite. Returns how many."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record_rows belongs inside the transaction of the change")
    rows = list(rows)
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(
            [_event(action, target=target, account=account, actor=actor, after=after) for target, account, after in rows]
        )
        transaction.on_commit(sealer.seal_soon)
        return len(rows)
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.actions.ACTIONS")
    who = _actor(actor)
    source_ip = source_ip_var.get()
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (created_at, actor_type, actor_id, actor_label, action, target_type, target_id, "
            f"account_id, before, after, outcome, reason, source_ip, request_id) "
            f"SELECT %s, %s, %s, %s, %s, r.target_type, r.target_id, r.account_id, NULL, r.after, %s, '', %s, %s "
            f"FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::jsonb[]) WITH ORDINALITY "
            f"AS r(target_type, target_id, account_id, after, n) ORDER BY r.n",
            [timezone.now(), who.kind, who.id[:64], who.label[:150], action, Outcome.SUCCESS, source_ip,
             request_id_var.get() or "",
             array_literal(str(target[0])[:64] for target, _, _ in rows),
             array_literal(("" if target[1] is None else str(target[1]))[:64] for target, _, _ in rows),
             array_literal(account for _, account, _ in rows),
             array_literal(None if after is None else json.dumps(jsonable(after), separators=(",", ":"))
                           for _, _, after in rows)],
        )
    transaction.on_commit(sealer.seal_soon)
    return len(rows)


_OUTCOMES = tuple(Outcome.values)  # ``.values`` builds a list per access


def _event(
    action: str,
    *,
    target: models.Model | tuple[object, object] | None = None,
    account: models.Model | int | None = None,
    actor: object = None,
    before: object = None,
    after: object = None,
    outcome: str = Outcome.SUCCESS,
    reason: str = "",
    source_ip: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.actions.ACTIONS")
    if outcome not in _OUTCOMES:
        raise ValueError(f"outcome must be one of {_OUTCOMES}")
    who = _actor(actor)
    target_type, target_id, implied_account = _target(target)
    if account is not None:
        implied_account = account.pk if isinstance(account, models.Model) else int(account)
    return AuditEvent(
        actor_type=who.kind,
        actor_id=who.id[:64],
        actor_label=who.label[:150],
        action=action,
        target_type=target_type[:64],
        target_id=target_id[:64],
        account_id=implied_account,
        before=jsonable(before),
        after=jsonable(after),
        outcome=outcome,
        reason=reason,
        source_ip=source_ip if source_ip is not None else source_ip_var.get(),
        request_id=(request_id if request_id is not None else request_id_var.get()) or "",
    )


@contextmanager
def audit_refusals(
    action: str,
    *,
    target: models.Model | tuple[object, object] | None = None,
    account: models.Model | int | None = None,
    actor: object = None,
    after: object = None,
    enabled: bool = True,
    aggregate: str | None = None,
) -> Iterator[None]:
    """Record a ``refused`` event when the wrapped service call raises a ``BourseError``
    (and re-raise it). Wrap the whole service, outside its transaction: the refusal is
    written after the failed transaction rolled back, so it survives it.

    ``aggregate`` (a channel of ``AGGREGATED_REFUSALS``): refusals repeat cheaply (a client
    cancelling a closed order in a loop), so per (account, error code) and window only the
    first ``BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT`` are events; the rest are counted and
    summarised once the window has closed, as for authentication failures."""
    try:
        yield
    except BourseError as exc:
        if enabled:
            extra: dict[str, object] = {}
            account_pk = getattr(account, "pk", account)
            if aggregate is not None and account_pk is not None:
                count, limit = _count_in_window(aggregate, f"{account_pk}:{exc.code}")
                if count > limit:
                    raise
                extra = {"refusal_in_window": count, "window_limit": limit}
            audit_record(
                action,
                target=target,
                account=account,
                actor=actor,
                after={**after, **extra} if extra and isinstance(after, dict) else after,
                outcome=Outcome.REFUSED,
                reason=f"{exc.code}: {exc.detail}",
            )
        raise


# --- Authentication failures ------------------------------------------------------------

AUTH_CHANNELS = ("api", "ws", "fix", "admin")


def _window(now: float) -> tuple[int, int]:
    size = int(_setting("BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S", 60))
    start = int(now // size) * size
    return start, start + size


def _failure_counter(channel: str, source: str, window_start: int) -> str:
    return f"audit:authfail:{channel}:{source}:{window_start}"


# Refusals aggregated like authentication failures (``audit_refusals(aggregate=...)``):
# window channel -> the summary event's action. The window's source is "<account id>:<code>".
AGGREGATED_REFUSALS = {"cancel": "order.cancel_refusals_suppressed"}


def _count_in_window(channel: str, source: str) -> tuple[int, int]:
    """Count one occurrence for (channel, source) in the current window of
    ``BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S``; return (its number in the window, the detail
    limit). The first one past the limit registers the window for its summary
    (``audit_flush_auth_failures``)."""
    start, end = _window(time.time())
    key = _failure_counter(channel, source, start)
    ttl = (end - start) * 3
    cache.add(key, 0, timeout=ttl)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=ttl)
        count = 1
    limit = int(_setting("BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT", 10))
    if count == limit + 1:
        AuthFailureWindow.objects.get_or_create(
            channel=channel,
            source_ip=source[:45],
            window_start=dt.datetime.fromtimestamp(start, dt.UTC),
            defaults={"window_end": dt.datetime.fromtimestamp(end, dt.UTC)},
        )
    return count, limit


def audit_auth_failure(
    source_ip: str | None, key_id: str | None, reason: str, *, channel: str = "api", account: int | None = None,
) -> AuditEvent | None:
    """Record a failed authentication from ``source_ip`` claiming ``key_id`` (the API key
    id; for ``channel="admin"``, the username typed).

    The first ``BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT`` failures per (channel, source,
    window of ``BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S``) are events of their own; the rest are
    only counted, in the cache, and summarised in one event when the window has closed.
    Returns the event, or None when the failure was only counted. Call it outside any
    transaction that is about to roll back (it writes on its own).
    """
    if channel not in AUTH_CHANNELS:
        raise ValueError(f"channel must be one of {AUTH_CHANNELS}")
    source = source_ip or "unknown"
    count, limit = _count_in_window(channel, source)
    if count > limit:
        return None
    is_admin = channel == "admin"
    return audit_record(
        "admin.login_failed" if is_admin else "auth.failed",
        target=("auth.user" if is_admin else "apikeys.apikey", (key_id or "")[:64]),
        account=account,  # the claimed key's account, when the key exists
        actor=Actor.anonymous(source),
        after={"channel": channel, "failure_in_window": count, "window_limit": limit},
        outcome=Outcome.REFUSED,
        reason=reason,
        source_ip=source_ip,
    )


def audit_flush_auth_failures(now: dt.datetime | None = None) -> int:
    """Write one summary event for each flood window that has closed; returns how many.
    Safe to run from several processes at once: a window is summarised by whoever deletes
    its row."""
    now = now or timezone.now()
    limit = int(_setting("BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT", 10))
    written = 0
    for window in AuthFailureWindow.objects.filter(window_end__lte=now).order_by("window_end")[:500]:
        with transaction.atomic():
            deleted, _ = AuthFailureWindow.objects.filter(pk=window.pk).delete()
            if not deleted:
                continue
            total = cache.get(_failure_counter(window.channel, window.source_ip, int(window.window_start.timestamp())))
            if window.channel in AGGREGATED_REFUSALS:
                _summarise_refusals(window, total, limit)
                written += 1
                continue
            is_admin = window.channel == "admin"
            audit_record(
                "admin.login_failures_suppressed" if is_admin else "auth.failures_suppressed",
                target=("source_ip", window.source_ip),
                actor=Actor.anonymous(window.source_ip),
                after={
                    "channel": window.channel,
                    "window_start": window.window_start,
                    "window_end": window.window_end,
                    "recorded": limit,
                    # None: the counter was lost (cache restart); at least one was suppressed.
                    "suppressed": None if total is None else max(total - limit, 1),
                    "total": total,
                },
                outcome=Outcome.REFUSED,
                reason="further failures from this source were counted, not recorded one by one",
                source_ip=window.source_ip if _is_ip(window.source_ip) else None,
                request_id="",
            )
            written += 1
    return written


def _summarise_refusals(window: AuthFailureWindow, total: int | None, limit: int) -> None:
    account_pk, _, code = window.source_ip.partition(":")
    audit_record(
        AGGREGATED_REFUSALS[window.channel],
        target=("accounts.account", account_pk),
        account=int(account_pk),
        actor=Actor.system(),
        after={
            "code": code,
            "window_start": window.window_start,
            "window_end": window.window_end,
            "recorded": limit,
            "suppressed": None if total is None else max(total - limit, 1),
            "total": total,
        },
        outcome=Outcome.REFUSED,
        reason=f"{code}: further refusals for this account were counted, not recorded one by one",
        source_ip=None,
        request_id="",
    )


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True

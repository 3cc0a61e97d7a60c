"""The order submission's write as ONE PostgreSQL statement.

``order_submit`` used to write an order in eleven round trips inside one transaction (the
market's halt check, the order, the balance rows locked, the hold journal, its entries, the
balance update, a re-read for the ``balances`` event, the account's event sequence, the
event, the engine's command, the audit event), holding the account's balance row locked
across all of them while Python ran in between. Here the same rows are written by one
statement of data-modifying CTEs, run in autocommit: the row locks live for one statement,
and the order costs one round trip (plus the engine's wake-up NOTIFY after it).

What decides is the balance ``UPDATE … WHERE available >= hold``: every other insert reads
from its result, so when the market is halted or changed (any column validation used:
``marketcache.PINNED``), the balance row does not exist yet, or the balance is short, the
statement writes nothing and says which; the caller validates again against the market as it
now is, or takes the general path (``orders._insert``), which refuses with the precise error
or, for a missing balance row, creates it. The rows written are exactly those of the general
path; ``tests/trading/test_order_write.py`` compares them column by column.

Column lists come from the models (``_columns``), so a field added to a model with a default
is written here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models
from django.db.models import Field, Model
from django.utils import timezone

from accounts.models import Balance, Bucket, EntryKind, Journal, LedgerEntry
from audit.models import AuditEvent
from audit.services import audit_event_build, audit_events_written

from .. import notify
from ..models import AccountSequence, Command, Market, Order, OutboxEvent
from ..outbox import signal
from . import marketcache


def available() -> bool:
    """Whether the one-statement write applies (PostgreSQL, outside any transaction)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


_SHAREABLE = (str, int, bool, Decimal, datetime)


class _Params(dict[str, Any]):
    """The statement's parameters, by (short) name. A value several rows share (the time, the
    account, the market, the hold, empty strings, a NULL of one column type) is passed once,
    which keeps the statement under psycopg's limits for caching its parsed form (50
    parameters, 4 KB; it re-parsed the statement on every order otherwise)."""

    def __init__(self, now: Any) -> None:
        super().__init__()
        self.now = now
        self._shared: dict[tuple[Any, ...], str] = {}

    def add(self, value: Any, null_type: str | None = None) -> str:
        """A parameter for ``value``: an equal value of the same type given before is passed
        once (a NULL, untyped on the wire, only for columns of one ``null_type``)."""
        if value is None:
            key: tuple[Any, ...] | None = None if null_type is None else ("null", null_type)
        else:
            key = (type(value), value) if isinstance(value, _SHAREABLE) else None
        name = self._shared.get(key) if key is not None else None
        if name is None:
            name = f"a{len(self)}"
            self[name] = value
            if key is not None:
                self._shared[key] = name
        return f"%({name})s"

    def sql(self, text: str, *values: Any) -> str:
        """``text`` with each ``%s`` replaced by a parameter for the next of ``values``."""
        parts = text.split("%s")
        if len(parts) != len(values) + 1:
            raise ValueError(f"{len(parts) - 1} placeholders for {len(values)} values")
        names = [self.add(value) for value in values]
        return parts[0] + "".join(name + part for name, part in zip(names, parts[1:], strict=True))


# Field kinds whose Python value is already what psycopg sends: no Django conversion needed.
_PLAIN = (models.CharField, models.IntegerField, models.BooleanField, models.ForeignKey)


@dataclass(frozen=True)
class _Column:
    field: Field[Any, Any]
    attname: str
    quoted: str  # the column's quoted name
    db_type: str | None  # a NULL's type, for sharing it with other NULLs of the type
    automatic_time: bool  # auto_now / auto_now_add: the statement's one time
    plain: bool


_plans: dict[type[Model], tuple[str, list[_Column]]] = {}


def _plan(model: type[Model]) -> tuple[str, list[_Column]]:
    """A model's insert columns, worked out once per process (asking each field for its
    database type and conversion on every order was most of this module's time)."""
    plan = _plans.get(model)
    if plan is None:
        columns = [
            _Column(field, field.attname, connection.ops.quote_name(field.column), field.db_type(connection),
                    bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)),
                    isinstance(field, _PLAIN))
            for field in model._meta.concrete_fields if not field.primary_key
        ]
        plan = _plans[model] = (", ".join(column.quoted for column in columns), columns)
    return plan


def _columns(instance: Model, sql: dict[str, str | tuple[str, list[Any]]], params: _Params) -> tuple[str, str]:
    """``(column list, value list)`` for inserting ``instance``: every concrete field but the
    primary key, each as a parameter taken from the instance (Django's own conversion where
    one applies, so defaults are applied; automatic times are the statement's one time)
    unless ``sql`` gives an SQL expression for it (with its own parameters, as
    ``(expression with %s, values)``)."""
    names, columns = _plan(type(instance))
    values = []
    for column in columns:
        name = column.field.name
        if name in sql:
            expression = sql[name]
            if isinstance(expression, tuple):
                expression = params.sql(expression[0], *expression[1])
            values.append(expression)
        elif column.automatic_time:
            setattr(instance, column.attname, params.now)
            values.append(params.add(params.now))
        else:
            value = getattr(instance, column.attname) if column.plain else \
                column.field.get_db_prep_save(column.field.pre_save(instance, add=True), connection)
            values.append(params.add(value, column.db_type))
    return names, ", ".join(values)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def order_insert_one_statement(account_id: int, market: Market, order: Order, audit_after: dict[str, object]) -> Order | None:
    """Write ``order`` (unsaved, fully populated) with its hold, command, ``balances`` event
    and audit event in one statement. Returns the order with its id and times, or None when
    nothing was written (no balance row, insufficient balance); raises ``MarketChanged`` when
    the market was halted or edited since ``market`` was read."""
    now = timezone.now()
    order.created_at = order.updated_at = now
    amount, asset = order.hold_amount, order.hold_asset_id
    params = _Params(now)

    # 1. the market, shared-locked: a halt or a filter edit (exclusive) waits for us, or we see it
    # and as validation saw it (marketcache: the copy may be a process's cached one)
    unchanged, unchanged_params = marketcache.unchanged(market)
    market_sql = params.sql(f"SELECT id FROM {_table(Market)} WHERE id = %s AND {unchanged} FOR SHARE",
                            market.pk, *unchanged_params)
    # 2. the hold: the one row lock, for this statement only
    balance_sql = params.sql(
        f"UPDATE {_table(Balance)} SET available = available - %s, locked = locked + %s "
        f"WHERE account_id = %s AND asset_id = %s AND available >= %s AND EXISTS (SELECT 1 FROM mkt) "
        f"RETURNING available, locked",
        amount, amount, account_id, asset, amount,
    )
    # 3. the order
    order_cols, order_vals = _columns(order, {}, params)
    order_sql = f"INSERT INTO {_table(Order)} ({order_cols}) SELECT {order_vals} FROM bal RETURNING id"
    # 4. the hold journal and its two entries (ledger.hold_legs)
    reference = "'order:' || o.id"
    journal = Journal(kind=EntryKind.HOLD, reason="", created_at=now)
    journal_cols, journal_vals = _columns(journal, {"reference": reference}, params)
    journal_sql = f"INSERT INTO {_table(Journal)} ({journal_cols}) SELECT {journal_vals} FROM ord o RETURNING id"
    entries = []
    for bucket, signed in ((Bucket.AVAILABLE, -amount), (Bucket.LOCKED, amount)):
        entry = LedgerEntry(account_id=account_id, asset_id=asset, bucket=bucket, kind=EntryKind.HOLD, amount=signed,
                            created_at=now)
        cols, vals = _columns(entry, {"journal": "j.id", "reference": reference}, params)
        entries.append(f"SELECT {vals} FROM jnl j, ord o")
    entries_sql = f"INSERT INTO {_table(LedgerEntry)} ({cols}) " + " UNION ALL ".join(entries)
    # 5. the engine's command
    command = Command(market_id=market.pk, kind=Command.Kind.NEW, created_at=now)
    command_cols, command_vals = _columns(command, {"order": "o.id"}, params)
    command_sql = f"INSERT INTO {_table(Command)} ({command_cols}) SELECT {command_vals} FROM ord o"
    # 6. the `balances` event, sequenced on the account's stream (outbox_write's rule)
    sequence_sql = params.sql(
        f"INSERT INTO {_table(AccountSequence)} (account_id, channel, last) SELECT %s, 'balances', 1 FROM bal "
        f"ON CONFLICT (account_id, channel) DO UPDATE SET last = {_table(AccountSequence)}.last + 1 RETURNING last",
        account_id,
    )
    scale = market.base.scale if asset == market.base_id else market.quote.scale
    payload = (
        "(SELECT json_build_object('asset', %s::text, 'total', round(b.available + b.locked, x)::text, "
        "'available', round(b.available, x)::text, 'locked', round(b.locked, x)::text)::jsonb FROM (SELECT %s::int AS x) d)"
    )
    event = OutboxEvent(market_id=market.pk, account_id=account_id, channel="balances", payload={}, created_at=now)
    event_cols, event_vals = _columns(
        event, {"sequence": "s.last", "payload": (payload, [asset, scale])}, params
    )
    event_sql = f"INSERT INTO {_table(OutboxEvent)} ({event_cols}) SELECT {event_vals} FROM bal b, seq s RETURNING id"
    # 7. the audit event
    audit = audit_event_build("order.submitted", target=("trading.order", None), account=account_id, after=audit_after)
    audit.created_at = now
    audit_cols, audit_vals = _columns(audit, {"target_id": "o.id::text"}, params)
    audit_sql = f"INSERT INTO {_table(AuditEvent)} ({audit_cols}) SELECT {audit_vals} FROM ord o"

    sql = (
        f"WITH mkt AS ({market_sql}), bal AS ({balance_sql}), ord AS ({order_sql}), jnl AS ({journal_sql}), "
        f"ent AS ({entries_sql}), cmd AS ({command_sql}), seq AS ({sequence_sql}), evt AS ({event_sql}), "
        f"aud AS ({audit_sql}) SELECT (SELECT id FROM mkt), (SELECT id FROM ord), (SELECT id FROM evt)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        market_id, order_id, event_id = cursor.fetchone()
    if market_id is None:
        raise marketcache.MarketChanged()
    if order_id is None:
        return None
    order.pk = order_id
    # After the commit (autocommit: it has happened): the engine, the WebSocket relays, the sealer.
    notify.wake_engine(market.pk)
    signal.announce([event_id])
    audit_events_written()
    return order


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

The statement's text is made once per process from the models (``_Statement``), so a field
added to a model with a default is written here too; per order only its values are worked out.
"""
from __future__ import annotations

import json
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

from ..models import AccountSequence, Command, Market, Order, OutboxEvent
from ..outbox import signal
from . import marketcache


def available() -> bool:
    """Whether the one-statement write applies (PostgreSQL, outside any transaction)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


# Field kinds whose Python value is already what psycopg sends: no Django conversion needed.
_PLAIN = (models.CharField, models.IntegerField, models.BooleanField, models.ForeignKey)


@dataclass(frozen=True)
class _Column:
    field: Field[Any, Any]
    attname: str
    quoted: str  # the column's quoted name
    db_type: str | None
    automatic_time: bool  # auto_now / auto_now_add: the statement's one time
    plain: bool

    def value(self, instance: Model) -> Any:
        """The column's value for ``instance``, converted as Django converts it for a save."""
        if self.plain:
            return getattr(instance, self.attname)
        return self.field.get_db_prep_save(self.field.pre_save(instance, add=True), connection)


def _plan(model: type[Model]) -> list[_Column]:
    """A model's insert columns: every concrete field but the primary key."""
    return [
        _Column(field, field.attname, connection.ops.quote_name(field.column), field.db_type(connection),
                bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)),
                isinstance(field, _PLAIN))
        for field in model._meta.concrete_fields if not field.primary_key
    ]


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _named(text: str, *names: str) -> str:
    """``text`` with each ``%s`` replaced by the next of ``names`` as a named parameter."""
    parts = text.split("%s")
    if len(parts) != len(names) + 1:
        raise ValueError(f"{len(parts) - 1} placeholders for {len(names)} names")
    return parts[0] + "".join(f"%({name})s" + part for name, part in zip(names, parts[1:], strict=True))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)  # an address (inet), a UUID


class _Statement:
    """The statement's text and the plan for its parameters, made once per process from the
    models (so a field added to a model is written here too): only the values of one
    submission are worked out per order. Building the text, seven model instances and every
    column's conversion on each order was ~0.7 ms of a REST process's CPU per placement, more
    than the statement's execution (thread CPU, ``bench/order_path.md``).

    Parameters: the submission's values by role (the time, the market and its pinned values,
    the account, the hold's asset and amount, the asset's scale), one per column of the order
    (Django's conversion), and the audit event as ONE JSON record (its columns read back by
    ``jsonb_populate_record``), which keeps the statement under psycopg's limits for caching
    its parsed form (50 parameters, 4 KB). What the other rows write that is the same for
    every order (a journal's kind, a command's defaults, the event's channel) is part of the
    text as typed literals; a column whose default is computed (callable) is a parameter
    worked out per order."""

    ROLES = {"account_id": "account", "market_id": "market", "hold_asset_id": "asset", "hold_amount": "amount"}

    def __init__(self) -> None:
        connection.ensure_connection()
        self._raw = connection.connection
        self.computed: list[tuple[str, _Column]] = []  # callable defaults, per order
        self.order_columns: list[tuple[str, _Column]] = []
        self.role_columns: list[tuple[str, _Column]] = []  # the order's columns other rows share
        self.condition = marketcache.unchanged_condition()

        market_sql = (f"SELECT id FROM {_table(Market)} WHERE id = %(market)s AND "
                      f"{_named(self.condition, 'open', 'pin_assets', 'pin_numbers')} FOR SHARE")
        balance_sql = (
            f"UPDATE {_table(Balance)} SET available = available - %(amount)s, locked = locked + %(amount)s "
            f"WHERE account_id = %(account)s AND asset_id = %(asset)s AND available >= %(amount)s "
            f"AND EXISTS (SELECT 1 FROM mkt) RETURNING available, locked"
        )
        order_values = []
        order_plan = _plan(Order)
        for number, column in enumerate(order_plan):
            if column.automatic_time:
                order_values.append("%(now)s")
            elif column.attname in self.ROLES:
                self.role_columns.append((self.ROLES[column.attname], column))
                order_values.append(f"%({self.ROLES[column.attname]})s")
            else:
                name = f"o{number}"
                self.order_columns.append((name, column))
                order_values.append(f"%({name})s")
        order_sql = (f"INSERT INTO {_table(Order)} ({self._names(order_plan)}) SELECT {', '.join(order_values)} "
                     f"FROM bal RETURNING id")
        reference = "'order:' || o.id"
        journal_sql = self._insert(Journal, {"kind": EntryKind.HOLD, "reason": ""}, {"reference": reference},
                                   "FROM ord o RETURNING id")
        entries = [
            self._select(LedgerEntry, {"bucket": bucket, "kind": EntryKind.HOLD},
                         {"journal": "j.id", "reference": reference, "account": "%(account)s",
                          "asset": "%(asset)s", "amount": amount}, "FROM jnl j, ord o")
            for bucket, amount in ((Bucket.AVAILABLE, "%(debit)s"), (Bucket.LOCKED, "%(amount)s"))
        ]
        entries_sql = f"INSERT INTO {_table(LedgerEntry)} ({self._names(_plan(LedgerEntry))}) " + " UNION ALL ".join(entries)
        command_sql = self._insert(Command, {"kind": Command.Kind.NEW}, {"market": "%(market)s", "order": "o.id"},
                                   "FROM ord o")
        sequences = _table(AccountSequence)
        sequence_sql = (
            f"INSERT INTO {sequences} (account_id, channel, last) SELECT %(account)s, 'balances', 1 FROM bal "
            f"ON CONFLICT (account_id, channel) DO UPDATE SET last = {sequences}.last + 1 RETURNING last"
        )
        payload = (
            "(SELECT json_build_object('asset', %(asset)s::text, 'total', round(b.available + b.locked, x)::text, "
            "'available', round(b.available, x)::text, 'locked', round(b.locked, x)::text)::jsonb "
            "FROM (SELECT %(scale)s::int AS x) d)"
        )
        event_sql = self._insert(OutboxEvent, {"channel": "balances"},
                                 {"market": "%(market)s", "account": "%(account)s", "sequence": "s.last",
                                  "payload": payload}, "FROM bal b, seq s RETURNING id")
        # the audit event: its columns from one JSON record, the order's id and the one time
        audit_plan = _plan(AuditEvent)
        timed = {column.attname for column in audit_plan if column.automatic_time or column.attname == "created_at"}
        self.audit_columns = [column for column in audit_plan if column.attname not in timed | {"target_id"}]
        audit_values = ["o.id::text" if column.attname == "target_id" else
                        "%(now)s" if column.attname in timed else f"r.{column.quoted}" for column in audit_plan]
        audit_sql = (f"INSERT INTO {_table(AuditEvent)} ({self._names(audit_plan)}) SELECT {', '.join(audit_values)} "
                     f"FROM ord o, jsonb_populate_record(NULL::{_table(AuditEvent)}, %(audit)s::jsonb) r")
        self.text = (
            f"WITH mkt AS ({market_sql}), bal AS ({balance_sql}), ord AS ({order_sql}), jnl AS ({journal_sql}), "
            f"ent AS ({entries_sql}), cmd AS ({command_sql}), seq AS ({sequence_sql}), evt AS ({event_sql}), "
            f"aud AS ({audit_sql}) SELECT (SELECT id FROM mkt), (SELECT id FROM ord), (SELECT id FROM evt)"
        )
        del self._raw  # the literals are made: no connection is kept past the build

    @staticmethod
    def _names(plan: list[_Column]) -> str:
        return ", ".join(column.quoted for column in plan)

    def _select(self, model: type[Model], fixed: dict[str, Any], sql: dict[str, str], tail: str) -> str:
        """``SELECT`` of one row of ``model``: ``sql`` gives an expression per field name,
        ``fixed`` a value that is the same for every order (a typed literal), an automatic time
        is the statement's time, every other field its default (a literal, or a parameter
        worked out per order when the default is computed)."""
        values = []
        for column in _plan(model):
            name = column.field.name
            if name in sql:
                values.append(sql[name])
            elif column.automatic_time:
                values.append("%(now)s")
            elif name in fixed:
                values.append(self._literal(column, fixed[name]))
            elif column.field.has_default() and callable(column.field.default):
                parameter = f"d{len(self.computed)}"
                self.computed.append((parameter, column))
                values.append(f"%({parameter})s")
            else:
                values.append(self._literal(column, column.field.get_default()))
        return f"SELECT {', '.join(values)} {tail}"

    def _insert(self, model: type[Model], fixed: dict[str, Any], sql: dict[str, str], tail: str) -> str:
        return f"INSERT INTO {_table(model)} ({self._names(_plan(model))}) {self._select(model, fixed, sql, tail)}"

    def _literal(self, column: _Column, value: Any) -> str:
        from psycopg import sql

        if isinstance(value, str):
            value = str(value)  # a choice's member: its plain value
        value = column.field.get_db_prep_save(value, connection)
        return f"{sql.Literal(value).as_string(self._raw)}::{column.db_type}"

    def params(self, market: Market, order: Order, audit: AuditEvent, now: datetime) -> dict[str, Any]:
        condition, (status, pin_assets, pin_numbers) = marketcache.unchanged(market)
        if condition != self.condition:
            raise RuntimeError("the market's condition changed under a built statement")
        params: dict[str, Any] = {"now": now, "open": status, "pin_assets": pin_assets, "pin_numbers": pin_numbers}
        for name, column in self.role_columns + self.order_columns:
            params[name] = column.value(order)  # the hold's amount too: refused when not storable
        if params["market"] != market.pk:
            raise ValueError("the order is another market's")
        asset = params["asset"]
        params["debit"] = -params["amount"]
        params["scale"] = market.base.scale if asset == market.base_id else market.quote.scale
        for name, column in self.computed:
            params[name] = column.field.get_db_prep_save(column.field.get_default(), connection)
        record = {}
        for column in self.audit_columns:
            value = getattr(audit, column.attname)
            if not (column.plain or isinstance(column.field, models.JSONField)):
                value = column.field.get_db_prep_save(value, connection)
            record[column.attname] = value
        params["audit"] = json.dumps(record, default=_json_default)
        return params


_statement: _Statement | None = None


def order_insert_one_statement(account_id: int, market: Market, order: Order, audit_after: dict[str, object]) -> Order | None:
    """Write ``order`` (unsaved, fully populated) with its hold, command, ``balances`` event
    and audit event in one statement. Returns the order with its id and times, or None when
    nothing was written (no balance row, insufficient balance); raises ``MarketChanged`` when
    the market was halted or edited since ``market`` was read (``market``: as validation saw
    it, the process's cached copy perhaps — the statement checks it under the row's shared
    lock)."""
    global _statement
    if order.account_id != account_id:
        raise ValueError("the order is another account's")
    statement = _statement
    if statement is None:
        statement = _statement = _Statement()
    now = timezone.now()
    order.created_at = order.updated_at = now
    audit = audit_event_build("order.submitted", target=("trading.order", None), account=account_id, after=audit_after)
    with connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params(market, order, audit, now))
        market_id, order_id, event_id = cursor.fetchone()
    if market_id is None:
        raise marketcache.MarketChanged()
    if order_id is None:
        return None
    order.pk = order_id
    # After the commit (autocommit: it has happened): the engine, the WebSocket relays, the sealer.
    signal.announce([event_id], wake=market.pk)
    audit_events_written()
    return order

"""The engine process: intake -> matching engine -> one commit per batch -> publish.

``MarketRunner`` owns one market's in-memory book. ``step()`` takes the pending commands in
sequence order, applies each with the pure engine (``matching``), and persists the
whole batch — order states, trades, fills, command outcomes, outbox events, the engine's
counters — in ONE transaction (group commit). The batch commits only while this process
still holds the market's fencing token, so a process that lost ownership can never write.
Verdicts and settlement go out after the commit.

A crash before commit loses nothing: the commands stay pending, and on start the book is
rebuilt from the open orders (in the sequence they were taken) and the same commands are
replayed to the same result. ``EngineProcess`` runs the loop for several markets and
handles ownership: one process per market at a time (PostgreSQL advisory lock, or an
exclusive file lock in the embedded mode); a standby waits and takes over.

A lost database (PostgreSQL restarted, the network cut) does not end the process: it drops
every market it owned (its advisory locks went with the connection), reconnects with
back-off and takes ownership again under a new fencing token — or stands by if another
process took the market meanwhile. A stale owner's batch cannot commit: it is fenced by the
token (``_persist``).
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, Max
from django.utils import timezone

import matching as engine
from accounts.models import MoneyNotStorable, money_storable
from audit.models import Outcome
from audit.services import audit_record, audit_record_many
from exchange import heartbeat, metrics, pubsub
from exchange.context import Actor
from exchange.pgarrays import array_literal, int_array
from exchange.pgpipeline import pipelined
from matching import messages as m

from . import notify, pricing
from .candles import CandleBook, candles_backfill, candles_payload
from .checksum import BookChecksum
from .models import Command, EngineState, Fill, Market, Order, OutboxEvent, Trade
from .outbox import signal
from .outbox.services import Event, book_update_payload, outbox_write
from .representations import fill_to_wire, order_to_wire, trade_to_wire
from .services import deadman

log = logging.getLogger("bourse.engine")

MARKET_REFRESH_S = 1.0
MARKET_BACKOFF_S = 0.5  # first retry of a market whose book cannot be run; doubles to the max
MARKET_BACKOFF_MAX_S = 30.0
RECONNECT_S = 0.25  # first retry after the database was lost; doubles to the max
RECONNECT_MAX_S = 5.0
ENGINE = Actor.system("engine")
ADVISORY_LOCK_CLASS = 0x426F  # first key of pg_try_advisory_lock(class, market_id)

SIDE_TO_ENGINE: dict[str, str] = {Order.Side.BUY: m.BUY, Order.Side.SELL: m.SELL}
SIDE_FROM_ENGINE = {m.BUY: Order.Side.BUY, m.SELL: Order.Side.SELL}
TYPE_TO_ENGINE: dict[str, str] = {
    Order.Type.LIMIT: m.LIMIT, Order.Type.MARKET: m.MARKET, Order.Type.STOP_LIMIT: m.LIMIT,
    Order.Type.STOP_MARKET: m.MARKET,
}
TIF_TO_ENGINE = {"gtc": m.GTC, "ioc": m.IOC, "fok": m.FOK, "gtd": m.GTC}  # gtd: a GTC with an expire_at
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def engine_time(moment: datetime) -> int:
    """A time on the engine's ``Expire`` clock: whole microseconds since the epoch."""
    return (moment - EPOCH) // MICROSECOND


ORDER_FIELDS = ("status", "filled_quantity", "filled_quote", "sequence", "cancel_reason", "reject_reason", "updated_at")


def _column(name: str) -> str:
    model_field = Order._meta.get_field(name)
    assert isinstance(model_field, Field)  # a concrete column, not a relation's reverse side
    return model_field.column


ORDER_UPDATE_SQL = "UPDATE {table} SET {columns} WHERE id = %s".format(
    table=Order._meta.db_table, columns=", ".join(f"{_column(f)} = %s" for f in ORDER_FIELDS)
)


def _update_orders(orders) -> None:
    """Write the orders' engine-owned columns. One prepared UPDATE run with ``executemany``
    (pipelined by psycopg): Django's ``bulk_update`` builds a CASE expression per column and
    row, which cost more than the whole rest of a batch."""
    ops = connection.ops
    rows = [
        [o.status, ops.adapt_decimalfield_value(o.filled_quantity), ops.adapt_decimalfield_value(o.filled_quote),
         o.sequence, o.cancel_reason, o.reject_reason, ops.adapt_datetimefield_value(o.updated_at), o.pk]
        for o in sorted(orders, key=lambda o: o.pk)  # primary-key order, as settlement locks them
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(ORDER_UPDATE_SQL, rows)


AMENDED_SQL = "UPDATE {table} SET {price} = %s, {quantity} = %s, {review} = TRUE WHERE id = %s".format(
    table=Order._meta.db_table, price=_column("price"), quantity=_column("quantity"), review=_column("hold_review")
)


def _update_amended(orders) -> None:
    """Amended orders: their new price and quantity, and a hold review for settlement (which
    releases what they no longer need; only settlement clears the flag)."""
    ops = connection.ops
    rows = [[ops.adapt_decimalfield_value(o.price), ops.adapt_decimalfield_value(o.quantity), o.pk]
            for o in sorted(orders, key=lambda o: o.pk)]
    with connection.cursor() as cursor:
        cursor.executemany(AMENDED_SQL, rows)


COMMAND_COLUMNS = [f.attname for f in Command._meta.concrete_fields]
ORDER_COLUMNS = [f.attname for f in Order._meta.concrete_fields]
ORDER_CACHE = Command._meta.get_field("order")  # sets a command's cached order (as select_related does)

FENCE_SQL = (
    f"UPDATE {EngineState._meta.db_table} SET command_sequence = %s, book_sequence = %s, updated_at = %s "
    f"WHERE market_id = %s AND owner_token = %s"
)
# The market and the limit are literals (see MarketRunner._pending); no "%" in the text: it
# is run without parameters. psycopg keeps 100 prepared statements per connection: an engine
# running many more markets than that re-prepares the least recently used (planning them, as
# every read of a quiet market did before).
PENDING_SQL = (
    f"SELECT {', '.join('c.' + f.column for f in Command._meta.concrete_fields)}, "
    f"{', '.join('o.' + f.column for f in Order._meta.concrete_fields)} "
    f"FROM {Command._meta.db_table} c JOIN {Order._meta.db_table} o ON o.id = c.order_id "
    "WHERE c.market_id = {market:d} AND NOT c.processed ORDER BY c.id LIMIT {limit:d}"
)
PROCESSED_SQL = f"UPDATE {Command._meta.db_table} SET processed = TRUE, result = %s WHERE id = %s"


def _mark_processed(done: dict[str, list[int]]) -> None:
    """The commands' outcomes: one prepared UPDATE run with ``executemany`` (pipelined)."""
    rows: list[list[Any]] = [[result, pk] for result, ids in done.items() for pk in ids]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(PROCESSED_SQL, rows)


TRADES_SQL = f"""
WITH t AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('{Trade._meta.db_table}', 'id')) AS id, u.*
    FROM unnest(%(t_price)s::numeric[], %(t_quantity)s::numeric[], %(t_sequence)s::bigint[], %(t_side)s::text[],
                %(t_taker)s::bigint[], %(t_maker)s::bigint[])
         WITH ORDINALITY AS u(price, quantity, sequence, taker_side, taker, maker, n)
    ORDER BY u.n
), trades AS (
    INSERT INTO {Trade._meta.db_table} (id, market_id, price, quantity, sequence, taker_side, taker_order_id, maker_order_id,
                         settled, created_at)
    SELECT id, %(market)s, price, quantity, sequence, taker_side, taker, maker, FALSE, %(now)s FROM t ORDER BY n
), f AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('{Fill._meta.db_table}', 'id')) AS id, t.id AS trade_id, u.*
    FROM unnest(%(f_trade)s::bigint[], %(f_order)s::bigint[], %(f_account)s::bigint[], %(f_side)s::text[],
                %(f_price)s::numeric[], %(f_quantity)s::numeric[], %(f_fee)s::numeric[], %(f_fee_asset)s::text[],
                %(f_liquidity)s::text[], %(f_remaining)s::numeric[])
         WITH ORDINALITY AS u(tn, order_id, account_id, side, price, quantity, fee, fee_asset, liquidity,
                              order_remaining, ord)
    JOIN t ON t.n = u.tn
    ORDER BY u.ord
), fills AS (
    INSERT INTO {Fill._meta.db_table} (id, trade_id, order_id, account_id, market_id, side, price, quantity, fee, fee_asset_id,
                        liquidity, order_remaining, settled, created_at)
    SELECT id, trade_id, order_id, account_id, %(market)s, side, price, quantity, fee, fee_asset, liquidity,
           order_remaining, FALSE, %(now)s
    FROM f ORDER BY ord
)
SELECT 0, id, n FROM t UNION ALL SELECT 1, id, ord FROM f
"""


def _insert_trades_postgres(market: Market, batch: Batch, now: datetime) -> None:
    """The batch's trades and fills as ONE statement over arrays (``exchange.pgarrays``), ids
    drawn in match order; the instances get their primary keys. Django's two ``bulk_create``
    calls (each value checked and adapted field by field) were the largest part of a small
    batch's write."""
    if not batch.trades:
        return
    fills = [fill for pair in batch.fills for fill in pair]
    for value in (v for fill in fills for v in (fill.price, fill.quantity, fill.fee, fill.order_remaining)):
        if value is not None and not money_storable(value):
            raise MoneyNotStorable(value, "fill")
    trade_index = {id(trade): n for n, trade in enumerate(batch.trades, start=1)}
    params: dict[str, Any] = {
        "market": market.pk, "now": now,
        "t_price": array_literal(t.price for t in batch.trades),
        "t_quantity": array_literal(t.quantity for t in batch.trades),
        "t_sequence": int_array(t.sequence for t in batch.trades),
        "t_side": array_literal(t.taker_side for t in batch.trades),
        "t_taker": int_array(t.taker_order_id for t in batch.trades),
        "t_maker": int_array(t.maker_order_id for t in batch.trades),
        "f_trade": int_array(trade_index[id(f.trade)] for f in fills),
        "f_order": int_array(f.order_id for f in fills),
        "f_account": int_array(f.account_id for f in fills),
        "f_side": array_literal(f.side for f in fills),
        "f_price": array_literal(f.price for f in fills),
        "f_quantity": array_literal(f.quantity for f in fills),
        "f_fee": array_literal(f.fee for f in fills),
        "f_fee_asset": array_literal(f.fee_asset_id for f in fills),
        "f_liquidity": array_literal(f.liquidity for f in fills),
        "f_remaining": array_literal(f.order_remaining for f in fills),
    }
    with connection.cursor() as cursor:
        cursor.execute(TRADES_SQL, params)
        rows = cursor.fetchall()
    for kind, pk, n in rows:
        if kind == 0:
            batch.trades[n - 1].pk = pk
        else:
            fills[n - 1].pk = pk
    for trade, pair in zip(batch.trades, batch.fills, strict=True):
        for fill in pair:
            fill.trade = trade  # sets trade_id: the trade has its primary key now


def _engine_audit(order: Order) -> dict[str, object]:
    return {"status": order.status, "price": order.price, "quantity": order.quantity,
            "filled_quantity": order.filled_quantity, "cancel_reason": order.cancel_reason or None}


def engine_new_order(order: Order, market: Market) -> m.NewOrder:
    """The engine command for a pending order: decimals become ticks, lots, quote units."""
    if order.type not in Order.LIMIT_TYPES and order.quote_quantity is not None:  # a (stop-)market buy
        budget, price = pricing.market_buy_budget_units(market, order.quote_quantity), 0
    else:
        budget = None
        price = pricing.to_ticks(market, order.price) if order.price is not None else 0
    size = pricing.to_lots(market, order.quantity) if order.quantity is not None else None
    stop = pricing.to_ticks(market, order.stop_price) if order.stop_price is not None else None
    expire_at = engine_time(order.expire_time) if order.expire_time is not None else None
    return m.NewOrder(
        order.pk,
        order.account_id,
        SIDE_TO_ENGINE[order.side],
        TYPE_TO_ENGINE[order.type],
        price,
        size,
        TIF_TO_ENGINE[order.time_in_force],
        order.post_only,
        order.stp,
        budget,
        stop,
        expire_at,
    )


def _fits_units(order: Order, market: Market) -> bool:
    """Whether a live order's price and sizes are whole numbers of the market's tick and lot."""
    if order.price is not None and order.price % market.tick_size:
        return False
    if order.stop_price is not None and order.stop_price % market.tick_size:
        return False
    if order.quantity is not None and (order.quantity % market.lot_size or order.filled_quantity % market.lot_size):
        return False
    return True


class LostOwnership(Exception):
    """Another engine process took this market over; this one must stop writing to it."""


def database_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the database refused or dropped a connection (or a statement
    for a transient reason: a lock, a serialisation failure), never a fault of one command:
    Django's and, for the engine's own connections (ownership locks, wake listener), psycopg's."""
    from django.db import InterfaceError, OperationalError

    kinds: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
    try:
        import psycopg

        kinds += (psycopg.OperationalError, psycopg.InterfaceError)
    except ImportError:  # pragma: no cover - psycopg is a requirement
        pass
    return kinds


@dataclass
class Batch:
    """What one step changes, collected in memory and written in one transaction."""

    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    fills: list[tuple[Fill, Fill]] = field(default_factory=list)
    book_updates: list[tuple[int, list, list, int]] = field(default_factory=list)  # (sequence, bids, asks, checksum)
    candles: dict = field(default_factory=dict)  # interval -> the bar the batch's trades touched
    done: dict[str, list[int]] = field(default_factory=dict)  # command result -> command ids
    verdicts: set[int] = field(default_factory=set)
    amended: dict[int, Order] = field(default_factory=dict)  # price/quantity written, hold reviewed
    audits: dict[str, list[Order]] = field(default_factory=dict)  # engine-made changes: action -> orders
    outbox_ids: list[int] = field(default_factory=list)  # the rows written, announced after commit


class MarketRunner:
    """One market's book and the translation between database rows and engine messages."""

    def __init__(self, market: Market, token: str):
        self.market = market
        self.token = token
        self.book = engine.OrderBook()
        self.resting: dict[int, Order] = {}  # open orders by id, as last persisted
        self.command_sequence = 0
        self._market_read_at = 0.0
        self.units: tuple | None = None  # (tick_size, lot_size) the book's integers count in
        self.refused: str | None = None  # why this market's book cannot run (never misprice)
        self.trade_sequence = 0  # the last trade's public trade_id in this market
        self.candles = CandleBook(market)
        self.checksum: BookChecksum | None = None
        self._settle_sent = -1e9  # monotonic time the last settlement task was sent
        self._settle_at: float | None = None  # a deferred settlement task goes out then
        # Whether commands may be waiting that the last read did not take: the read filled its
        # limit, or a batch failed (a replay stops at the command it quarantines). Else the
        # read saw every command committed before it, and a later one wakes the engine.
        self.more_pending = True

    # -- start -----------------------------------------------------------------------------
    def rebuild(self) -> None:
        """Load the book from the open orders, in the sequence they were taken."""
        market = self.market = Market.objects.select_related("base", "quote").get(pk=self.market.pk)
        self._market_read_at = time.monotonic()
        self.units = (market.tick_size, market.lot_size)
        misfits = [o.pk for o in Order.objects.filter(market=market, status__in=Order.LIVE_STATUSES)
                   if not _fits_units(o, market)]
        if misfits:
            # Tick or lot size changed under live orders (market_update refuses that, so
            # something bypassed it): counting these orders in the new units would trade them
            # at other prices and sizes than were accepted. Refuse the book, process nothing,
            # until an operator puts the market back (re-checked every MARKET_REFRESH_S).
            self.book = engine.OrderBook()
            self.resting = {}
            self.refused = (
                f"tick_size {market.tick_size} / lot_size {market.lot_size} do not fit live order(s) "
                f"{', '.join(map(str, misfits[:10]))}"
            )
            log.error("engine refuses the market's book", extra={"market": market.symbol, "reason": self.refused})
            return
        self.refused = None
        state, _ = EngineState.objects.get_or_create(market=market)
        opened = list(
            Order.objects.filter(market=market, status__in=(*Order.OPEN_STATUSES, Order.Status.UNTRIGGERED))
            .order_by("sequence", "id")
        )
        resting, stops = [], []
        for order in opened:
            order.market = market
            if order.status == Order.Status.UNTRIGGERED:  # waiting for its stop, in trigger priority
                stops.append(engine_new_order(order, market))
                continue
            remaining = order.quantity - order.filled_quantity
            resting.append(
                m.RestingOrder(
                    order.pk,
                    order.account_id,
                    SIDE_TO_ENGINE[order.side],
                    pricing.to_ticks(market, order.price),
                    pricing.to_lots(market, remaining),
                    pricing.to_lots(market, order.quantity),
                    engine_time(order.expire_time) if order.expire_time is not None else None,
                )
            )
        self.book = engine.OrderBook.from_resting(resting, sequence=state.book_sequence, stops=stops)
        self.resting = {order.pk: order for order in opened}
        self.command_sequence = state.command_sequence
        self._rebuild_market_data(market)
        log.info("book rebuilt", extra={"market": market.symbol, "orders": len(opened), "sequence": state.book_sequence})

    def _rebuild_market_data(self, market: Market) -> None:
        """Trade numbering, candles (folding in trades no bar holds yet) and the book checksum."""
        self.trade_sequence = Trade.objects.filter(market=market).aggregate(last=Max("sequence"))["last"] or 0
        candles_backfill(market)
        self.candles = CandleBook(market)
        self.candles.load()
        self.checksum = BookChecksum(self.book, market.tick_size, market.quote.scale, market.lot_size, market.base.scale)

    # -- the batch -------------------------------------------------------------------------
    def _pending(self, limit: int) -> list[Command]:
        """The next ``limit`` pending commands with their orders, in id order. PostgreSQL: one
        statement per market and limit with both as literals (``PENDING_SQL``), so its plan is
        made once per connection (with them as parameters PostgreSQL re-planned it on every
        read of a market quieter than the average: tests/trading/test_plan_cache.py), and its
        rows — the command's columns, then the order's — become instances with ``from_db``, as
        Django's iterator makes them (PostgreSQL needs no converters for these fields). SQLite:
        the ORM."""
        if connection.vendor != "postgresql":
            return list(Command.objects.filter(market_id=self.market.pk, processed=False)
                        .select_related("order").order_by("id")[:limit])
        with connection.cursor() as cursor:
            cursor.execute(PENDING_SQL.format(market=int(self.market.pk), limit=int(limit)))
            rows = cursor.fetchall()
        width = len(COMMAND_COLUMNS)
        commands = []
        for row in rows:
            if len(row) != width + len(ORDER_COLUMNS):  # pragma: no cover - a model changed without this
                raise RuntimeError("pending-command row does not match the Command and Order fields")
            command = Command.from_db(connection.alias, COMMAND_COLUMNS, row[:width])
            ORDER_CACHE.set_cached_value(command, Order.from_db(connection.alias, ORDER_COLUMNS, row[width:]))
            commands.append(command)
        return commands

    def step(self, limit: int | None = None) -> int:
        """Process up to ``limit`` (default ``BOURSE_ENGINE_BATCH``) pending commands as one
        batch; return how many."""
        limit = limit or settings.BOURSE_ENGINE_BATCH
        self.more_pending = True  # until a batch of fewer than `limit` commands committed
        commands = self._pending(limit)
        if not commands and not self.expiry_due():
            self.more_pending = False
            return 0
        if time.monotonic() - self._market_read_at > MARKET_REFRESH_S:  # fee changes apply within a second
            self.market = Market.objects.select_related("base", "quote").get(pk=self.market.pk)
            self._market_read_at = time.monotonic()
            if self.refused or (self.market.tick_size, self.market.lot_size) != self.units:
                self.rebuild()  # the book's integers are in the old units: recount (or refuse)
        if self.refused:
            self.more_pending = False  # nothing runs until the market is put back (re-checked)
            return 0
        try:
            self._run_batch(commands)
            self.more_pending = len(commands) >= limit
            return max(len(commands), 1)
        except LostOwnership:
            raise
        except database_errors():
            raise  # the database, not a command: nothing to quarantine (the loop retries)
        except Exception as error:  # noqa: BLE001 -- any failure of a batch: find and quarantine the poison
            if not commands:  # an expiry-only batch: no command to blame, the market backs off
                raise
            if len(commands) == 1:
                self._quarantine(Command.objects.get(pk=commands[0].pk), error)
                return 1
        # One command poisons the batch: replay them one by one from what committed, so the
        # good ones go through and the bad one is set aside instead of failing every retry.
        done = 0
        for stale in commands:
            # Fresh rows: the failed attempt changed the in-memory orders it touched.
            command = Command.objects.select_related("order").get(pk=stale.pk)
            try:
                self._run_batch([command])
            except LostOwnership:
                raise
            except database_errors():
                raise
            except Exception as error:  # noqa: BLE001 -- this command alone fails: set it aside
                self._quarantine(command, error)
                return done + 1
            done += 1
        return done

    def _run_batch(self, commands: list[Command]) -> None:
        """Match ``commands`` and commit them as one batch; on any failure the in-memory book
        is rebuilt from what committed (nothing of the batch did) and the error re-raised."""
        batch = Batch()
        now = timezone.now()
        try:
            # Orders that expired by now go first — also those that expired while no engine ran:
            # nothing in this batch can trade with them.
            self._apply(self.book.process(m.Expire(engine_time(now))), batch, now)
            for command in commands:
                if command.kind == Command.Kind.NEW:
                    self._new(command, batch, now)
                elif command.kind == Command.Kind.AMEND:
                    self._amend(command, batch, now)
                else:
                    self._cancel(command, batch, now)
            started = time.perf_counter()
            self._persist(batch, now)
            metrics.engine_batch(self.market.symbol, len(commands), time.perf_counter() - started)
        except Exception:
            # The in-memory book is ahead of the database: rebuild it from what committed.
            self.rebuild()
            raise
        self._after_commit(batch)

    def expiry_due(self, now: datetime | None = None) -> bool:
        """Whether an order of this book has reached its expire_time."""
        due = self.book.next_expiry
        return due is not None and due <= engine_time(now or timezone.now())

    def seconds_to_expiry(self) -> float | None:
        """Seconds until the book's next expiry (None: no gtd order), for the idle wait."""
        due = self.book.next_expiry
        if due is None:
            return None
        return max(0.0, (due - engine_time(timezone.now())) / 1e6)

    def _quarantine(self, command: Command, error: Exception) -> None:
        """Set aside a command the engine cannot process: mark it processed with result
        ``quarantined``, reject its order if it was a new one (``reject_reason``
        ``engine_error``; settlement releases its hold), audit it and raise an alert. The
        market goes on with the next command; nothing of the failed attempt was committed."""
        now = timezone.now()
        order = Order.objects.select_related("market").filter(pk=command.order_id).first()
        with transaction.atomic(durable=True):
            fenced = EngineState.objects.filter(market=self.market, owner_token=self.token).update(updated_at=now)
            if fenced != 1:
                raise LostOwnership(self.market.symbol)
            Command.objects.filter(pk=command.pk).update(processed=True, result="quarantined")
            rejected = False
            if order is not None and command.kind == Command.Kind.NEW and order.status == Order.Status.PENDING:
                Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
                    status=Order.Status.REJECTED, reject_reason="engine_error", updated_at=now
                )
                order.refresh_from_db()
                rejected = True
            audit_record(
                "engine.command_quarantined", target=order, actor=ENGINE, outcome=Outcome.REFUSED,
                reason=type(error).__name__,
                after={"command": command.pk, "kind": command.kind, "market": self.market.symbol,
                       "error": str(error)[:500], "order_rejected": rejected},
            )
            if rejected and order is not None:
                audit_record("order.rejected", target=order, actor=ENGINE, after={"reason": "engine_error"})
                outbox_write([OutboxEvent(market=self.market, account_id=order.account_id, channel="orders",
                                          payload=order_to_wire(order, self.market), created_at=now)])
        log.critical(
            "engine quarantined a command it could not process",
            exc_info=(type(error), error, error.__traceback__),
            extra={"alert": "engine_command_quarantined", "market": self.market.symbol, "command": command.pk,
                   "order": command.order_id, "command_kind": command.kind},
        )
        if order is not None:
            notify.publish_verdicts([order])  # as committed (rejected, or unchanged)
        else:
            notify.publish_verdicts([], hints=[command.order_id])
        if rejected:
            self._enqueue_settlement()

    def _new(self, command: Command, batch: Batch, now) -> None:
        order = command.order
        order.market = self.market
        if order.status != Order.Status.PENDING:  # processed before a crash? never twice
            batch.done.setdefault("duplicate", []).append(command.pk)
            return
        self.command_sequence += 1
        order.sequence = self.command_sequence
        events = self.book.process(engine_new_order(order, self.market))
        self._touch(order, batch, now)
        self._apply(events, batch, now)
        if order.status == Order.Status.PENDING:  # accepted, no trade, no rest: cannot happen
            raise RuntimeError(f"engine left order {order.pk} without a verdict: {events}")
        batch.done.setdefault("accepted", []).append(command.pk)

    def _cancel(self, command: Command, batch: Batch, now) -> None:
        events = self.book.process(m.Cancel(command.order_id))
        cancelled = any(type(e) is m.Cancelled for e in events)
        self._apply(events, batch, now)
        if cancelled and command.reason:  # who asked: the owner (user), a disconnect, an operator
            batch.orders[command.order_id].cancel_reason = command.reason
        batch.done.setdefault("cancelled" if cancelled else "unknown_order", []).append(command.pk)
        batch.verdicts.add(command.order_id)

    def _amend(self, command: Command, batch: Batch, now) -> None:
        """Apply an amend (``order_amend`` took the extra hold and wrote the new client id). The
        order's hold is reviewed by settlement whatever the outcome."""
        current = self.resting.get(command.order_id)
        order = current or command.order
        order.market = self.market
        order.client_order_id = command.order.client_order_id  # the service wrote it; keep events current
        price = pricing.to_ticks(self.market, command.price) if command.price is not None else None
        size = pricing.to_lots(self.market, command.quantity) if command.quantity is not None else None
        if current is None:
            result = m.REJECT_UNKNOWN  # closed (or never accepted) before the amend reached the engine
        elif price is None and size is None:
            result = "amended"  # only the client order id changed
            self._touch(order, batch, now)
        else:
            events = self.book.process(m.Amend(order.pk, price, size, order.post_only, order.stp))
            rejected = next((e for e in events if type(e) is m.Rejected), None)
            result = rejected.reason if rejected is not None else "amended"
            if rejected is None:
                self._touch(order, batch, now)
            self._apply(events, batch, now)
        batch.amended[order.pk] = order
        batch.done.setdefault(result, []).append(command.pk)
        batch.verdicts.add(command.order_id)

    def _touch(self, order: Order, batch: Batch, now) -> None:
        order.updated_at = now
        batch.orders[order.pk] = order
        batch.verdicts.add(order.pk)

    def _apply(self, events, batch: Batch, now) -> None:
        market = self.market
        levels: tuple[list, list] | None = None
        changed: list[tuple[bool, int, int]] = []  # (is bid, ticks, lots) for the checksum
        sequence = 0  # the batch's level-2 sequence, read with levels (both set by the first LevelUpdate)
        for event in events:
            kind = type(event)
            if kind is m.Trade:
                self._trade(event, batch, now)
            elif kind is m.Rested:
                order = batch.orders[event.order_id]
                order.status = Order.Status.PARTIALLY_FILLED if order.filled_quantity else Order.Status.OPEN
                self.resting[order.pk] = order
            elif kind is m.Untriggered:
                order = batch.orders[event.order_id]
                order.status = Order.Status.UNTRIGGERED
                self.resting[order.pk] = order
            elif kind is m.Triggered or kind is m.Amended:
                order = batch.orders.get(event.order_id) or self.resting[event.order_id]
                self._touch(order, batch, now)
                if kind is m.Amended:
                    order.price = pricing.from_ticks(market, event.price)
                    order.quantity = pricing.from_lots(market, event.size)
                    batch.amended[order.pk] = order
                if kind is m.Triggered or not event.kept_priority:
                    # Its place in time is now: a rebuild puts it behind what rested before.
                    self.command_sequence += 1
                    order.sequence = self.command_sequence
                batch.audits.setdefault("order.triggered" if kind is m.Triggered else "order.amended", []).append(order)
            elif kind is m.Cancelled:
                # The taker's remainder, or a resting order (user cancel, STP cancel_oldest/both).
                order = batch.orders.get(event.order_id) or self.resting[event.order_id]
                self._touch(order, batch, now)
                spent_budget = event.reason == m.CANCEL_BUDGET and order.filled_quantity
                order.status = Order.Status.FILLED if spent_budget else Order.Status.CANCELLED
                order.cancel_reason = "" if spent_budget else event.reason
                self.resting.pop(order.pk, None)
                if event.reason == m.CANCEL_EXPIRED:
                    batch.audits.setdefault("order.expired", []).append(order)
            elif kind is m.Rejected:
                rejected = batch.orders.get(event.order_id)
                if rejected is not None and rejected.status == Order.Status.PENDING:
                    rejected.status = Order.Status.REJECTED
                    rejected.reject_reason = event.reason
            elif kind is m.LevelUpdate:
                if levels is None:
                    levels, sequence = ([], []), event.sequence
                target = levels[0] if event.side == m.BUY else levels[1]
                target.append((pricing.from_ticks(market, event.price), pricing.from_lots(market, event.total)))
                changed.append((event.side == m.BUY, event.price, event.total))
        if levels is not None:
            assert self.checksum is not None  # set by rebuild(), which runs before any batch
            batch.book_updates.append((sequence, levels[0], levels[1], self.checksum.after(changed)))

    def _trade(self, event, batch: Batch, now) -> None:
        market = self.market
        price = pricing.from_ticks(market, event.price)
        quantity = pricing.from_lots(market, event.size)
        notional = price * quantity
        taker = batch.orders[event.taker_id]
        maker = self.resting[event.maker_id]
        self._touch(maker, batch, now)
        for order in (taker, maker):
            order.filled_quantity += quantity
            order.filled_quote += notional
        taker.status = Order.Status.FILLED if event.taker_remaining == 0 else Order.Status.PARTIALLY_FILLED
        if event.maker_remaining == 0:
            maker.status = Order.Status.FILLED
            self.resting.pop(maker.pk, None)
        else:
            maker.status = Order.Status.PARTIALLY_FILLED
        self.trade_sequence += 1
        trade = Trade(
            market=market,
            sequence=self.trade_sequence,
            price=price,
            quantity=quantity,
            taker_side=taker.side,
            taker_order=taker,
            maker_order=maker,
            created_at=now,
        )
        taker_remaining = None if event.taker_remaining is None else pricing.from_lots(market, event.taker_remaining)
        fills = (
            Fill(
                trade=trade, order=taker, account_id=taker.account_id, market=market, side=taker.side,
                price=price, quantity=quantity, fee=pricing.fee(market, notional, market.taker_fee_rate),
                fee_asset_id=market.quote_id, liquidity=Fill.Liquidity.TAKER, order_remaining=taker_remaining,
                created_at=now,
            ),
            Fill(
                trade=trade, order=maker, account_id=maker.account_id, market=market, side=maker.side,
                price=price, quantity=quantity, fee=pricing.fee(market, notional, market.maker_fee_rate),
                fee_asset_id=market.quote_id, liquidity=Fill.Liquidity.MAKER,
                order_remaining=pricing.from_lots(market, event.maker_remaining), created_at=now,
            ),
        )
        batch.trades.append(trade)
        batch.fills.append(fills)

    # -- persistence -----------------------------------------------------------------------
    def _persist(self, batch: Batch, now) -> None:
        """Write the batch in one transaction, fenced by this runner's ownership token. On
        PostgreSQL the statements go out pipelined (``exchange.pgpipeline``): the fence, the
        order and command updates and the rest are sent without waiting for each answer: the
        engine waits where it reads rows back (trades and fills, outbox rows), at psycopg's
        ``BEGIN``, the pipeline's end and the commit, not once per statement (a one-order batch
        waits 4 times, its command read a fifth). So the fence's answer is read after the
        others were sent: a lost fence rolls everything back as before (nothing commits), and
        a statement that failed behind a lost fence is reported as the lost ownership."""
        # The fence's statement is prepared once (Django would compile an UPDATE per batch).
        with transaction.atomic(durable=True), pipelined() as pipe, connection.cursor() as fence:
            fence.execute(FENCE_SQL, [self.command_sequence, self.book.sequence,
                                      connection.ops.adapt_datetimefield_value(now), self.market.pk, self.token])
            try:
                self._write(batch, now)
            except Exception as error:
                try:
                    lost = pipe.rowcount(fence) != 1
                except Exception:  # noqa: BLE001 - no answer to read (the connection went): the error stands
                    lost = False
                if lost:
                    raise LostOwnership(self.market.symbol) from error
                raise
            if pipe.rowcount(fence) != 1:
                raise LostOwnership(self.market.symbol)

    def _write(self, batch: Batch, now) -> None:
        """The batch's rows, inside ``_persist``'s fenced transaction."""
        market = self.market
        _update_orders(batch.orders.values())
        if batch.amended:
            _update_amended(batch.amended.values())
        rejected = [o for o in batch.orders.values() if o.status == Order.Status.REJECTED]
        audit_record_many("order.rejected", rejected, actor=ENGINE, after=lambda o: {"reason": o.reject_reason})
        for action, changed in batch.audits.items():
            audit_record_many(action, changed, actor=ENGINE, after=_engine_audit)
        all_fills = [fill for pair in batch.fills for fill in pair]
        if connection.vendor == "postgresql":
            _insert_trades_postgres(market, batch, now)
        else:
            Trade.objects.bulk_create(batch.trades, batch_size=500)
            for trade, pair in zip(batch.trades, batch.fills, strict=True):
                for fill in pair:
                    fill.trade = trade  # the trade has its primary key now
            Fill.objects.bulk_create(all_fills, batch_size=1000)
        batch.candles = self.candles.record(batch.trades)
        _mark_processed(batch.done)
        # One row per stream (book, trades, each account's orders and fills), sequenced,
        # announced after commit with the verdicts (_after_commit).
        rows = outbox_write(self._outbox(batch, all_fills, now), batched=True, announce=False)
        batch.outbox_ids = [row.pk for row in rows if row.pk is not None]  # (each written row has its id)

    def _outbox(self, batch: Batch, fills: list[Fill], now) -> list[Event]:
        """The batch's events as plain ``Event`` values (no model instance per event)."""
        market = self.market
        market_id = market.pk
        events = []
        for sequence, bids, asks, checksum in batch.book_updates:
            payload = book_update_payload(market, sequence, bids, asks, checksum)
            events.append(Event("book", payload, market_id, sequence=sequence, created_at=now))
        for trade in batch.trades:
            events.append(Event("trades", trade_to_wire(trade, market), market_id, created_at=now))
        if batch.candles:
            events.append(Event("candles", candles_payload(market, batch.candles), market_id, created_at=now))
        for order in batch.orders.values():
            events.append(Event("orders", order_to_wire(order, market), market_id, order.account_id, created_at=now))
        for fill in fills:
            events.append(Event("fills", fill_to_wire(fill, market, fill.order.client_order_id), market_id,
                                fill.account_id, created_at=now))
        return events

    def _after_commit(self, batch: Batch) -> None:
        self.candles.commit(batch.candles)
        # The verdicts carry each touched order's committed state: waiters answer from them.
        # They go with the outbox rows' announcement (one Redis round trip).
        # A cancel that found no live order changed none: its id goes as a bare hint.
        signal.publish_batch(
            [batch.orders[i] for i in sorted(batch.verdicts) if i in batch.orders],
            sorted(i for i in batch.verdicts if i not in batch.orders),
            batch.outbox_ids,
        )
        if batch.trades or any(o.is_closed for o in batch.orders.values()):
            self._enqueue_settlement()

    def _enqueue_settlement(self) -> None:
        """Ask the worker to settle this market — at most once per ``BOURSE_SETTLE_EVERY_MS``.
        A task's cost is mostly fixed (the message, three short transactions), so one task per
        small batch cost more than the settling itself; within the interval the request is
        deferred (``flush_settlement`` sends it), and the one task then settles every batch
        committed before it starts. Every committed trade is still followed by a task sent
        after its commit; a task lost with a crash is the periodic sweep's, as before."""
        from .tasks import settle_market

        now = time.monotonic()
        every = settings.BOURSE_SETTLE_EVERY_MS / 1000
        if every and not settle_market.app.conf.task_always_eager and now < self._settle_sent + every:
            self._settle_at = self._settle_sent + every
            return
        self._send_settlement(now)

    def flush_settlement(self, force: bool = False) -> None:
        """Send the deferred settlement task once its time has come (or now, ``force``)."""
        if self._settle_at is not None and (force or time.monotonic() >= self._settle_at):
            self._send_settlement(time.monotonic())

    def seconds_to_settlement(self) -> float | None:
        """Seconds until a deferred settlement task is due (None: none is), for the idle wait."""
        return None if self._settle_at is None else max(0.0, self._settle_at - time.monotonic())

    def _send_settlement(self, now: float) -> None:
        from .tasks import settle_market

        self._settle_sent, self._settle_at = now, None
        try:
            settle_market.delay(self.market.pk)
        except Exception:  # the broker is down: the periodic sweep settles it later
            log.exception("could not enqueue settlement", extra={"market": self.market.symbol})


class Ownership:
    """Exclusive ownership of markets across processes and machines.

    PostgreSQL: a session advisory lock per market on a dedicated connection (released by
    the server if this process dies). SQLite (one machine by nature): an exclusive ``flock``
    on a file per market (released by the kernel if this process dies).
    """

    def __init__(self):
        self._pg = None
        self._files: dict[int, TextIO] = {}
        if connection.vendor == "postgresql":
            import psycopg

            # Named, so an operator sees which process holds a market's lock (pg_stat_activity).
            params = {**connection.get_connection_params(), "application_name": f"bourse-engine:{os.getpid()}"}
            self._pg = psycopg.connect(**params, autocommit=True)

    def try_acquire(self, market_id: int) -> bool:
        if self._pg is not None:
            row = self._pg.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_CLASS, market_id]).fetchone()
            assert row is not None  # a SELECT of one value returns one row
            return bool(row[0])
        # Not a with-block: the flock lives as long as this handle, i.e. for as long as we own the market.
        handle = open(pubsub.run_dir() / f"engine-{market_id}.lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._files[market_id] = handle
        return True

    def check(self) -> None:
        """Raise (a psycopg error) if the lock connection is gone: its locks went with it."""
        if self._pg is not None:
            self._pg.execute("SELECT 1")

    def release(self, market_id: int) -> None:
        if self._pg is not None:
            self._pg.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_CLASS, market_id])
        elif market_id in self._files:
            self._files.pop(market_id).close()

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class EngineProcess:
    """The loop of ``run_engine``: own markets, run batches, sleep until woken."""

    IDLE_WAIT_S = 1.0  # fallback re-check when no wake signal comes (never on the hot path)
    ACQUIRE_EVERY_S = 1.0

    def __init__(self, symbols: list[str] | None = None):
        self.symbols = symbols
        self.runners: dict[int, MarketRunner] = {}
        self.ownership = Ownership()
        self.listener: notify.WakeListener | None = None
        self.stopping = False
        self._last_acquire = 0.0
        self._failing: dict[int, tuple[int, float]] = {}  # market id -> (failures, retry at)
        self.heartbeat = heartbeat.Beater("engine")  # readiness: which markets this process runs
        self._next_dead_man = 0.0
        # The markets whose pending commands the loop reads next: those woken since their last
        # read, those whose last read may have left some, and every market once per
        # IDLE_WAIT_S (the fallback for a wake-up that was lost). A batch is not followed by
        # an empty read: a command committed after a read wakes the engine after its commit.
        self._due: set[int] = set()
        self._recheck_at = 0.0

    def _wanted(self) -> list[Market]:
        markets = Market.objects.select_related("base", "quote")
        if self.symbols:
            markets = markets.filter(symbol__in=self.symbols)
        return list(markets)

    def acquire(self) -> None:
        """Take every wanted market nobody else owns (standby: retried every second)."""
        self._last_acquire = time.monotonic()
        self.ownership.check()  # a dead lock connection means our markets are no longer ours
        changed = False
        for market in self._wanted():
            if market.pk in self.runners or not self.ownership.try_acquire(market.pk):
                continue
            token = uuid.uuid4().hex
            EngineState.objects.get_or_create(market=market)
            EngineState.objects.filter(market=market).update(owner_token=token, owner_since=timezone.now())
            runner = MarketRunner(market, token)
            runner.rebuild()
            self.runners[market.pk] = runner
            changed = True
            log.info("engine owns market", extra={"market": market.symbol})
        if changed or self.listener is None:
            if self.listener is not None:
                self.listener.close()
            self.listener = notify.WakeListener(self.runners.keys())
            # A wake-up sent while no listener listened is lost: read every market once.
            self._due = set(self.runners)

    def drop(self, market_id: int) -> None:
        runner = self.runners.pop(market_id)
        runner.flush_settlement(force=True)  # what it committed is settled by whoever owns the market now
        self.ownership.release(market_id)
        log.error("engine lost market", extra={"market": runner.market.symbol})

    def run_once(self, markets: Collection[int] | None = None) -> int:
        """One batch for each market (of ``markets`` only, when given: a market with an order
        expiring, or failing and due for its retry, runs anyway); how many commands ran."""
        done = 0
        now = time.monotonic()
        for market_id, runner in list(self.runners.items()):
            if self._failing.get(market_id, (0, 0.0))[1] > now:
                continue  # backing off after a failure of the whole market
            if markets is not None and market_id not in markets and market_id not in self._failing \
                    and not runner.expiry_due():
                continue  # not woken since a read that took every command committed before it
            try:
                if market_id in self._failing:
                    runner.rebuild()
                done += runner.step()
                self._failing.pop(market_id, None)
            except LostOwnership:
                self._failing.pop(market_id, None)
                self.drop(market_id)
            except Exception as error:
                if isinstance(error, database_errors()) and not self._connected():
                    raise  # the database is gone, not this market: run() reconnects
                # Not one command (those are quarantined) but the market itself: its book cannot
                # be rebuilt, or the database is away. The other markets go on; this one is
                # retried with exponential back-off, and each failure raises an alert.
                failures = self._failing.get(market_id, (0, 0.0))[0] + 1
                delay = min(MARKET_BACKOFF_MAX_S, MARKET_BACKOFF_S * 2 ** (failures - 1))
                self._failing[market_id] = (failures, now + delay)
                log.critical(
                    "engine cannot run market; retrying", exc_info=True,
                    extra={"alert": "engine_market_failing", "market": runner.market.symbol,
                           "failures": failures, "retry_in_s": delay},
                )
                if not connection.in_atomic_block:  # a broken connection is reopened on the retry
                    try:
                        connection.close_if_unusable_or_obsolete()
                    except Exception:  # noqa: BLE001 - best effort before the retry
                        log.debug("closing the connection failed", exc_info=True)
        return done

    def fire_dead_man(self) -> None:
        """Fire the API keys' dead-man switches that are due (``trading.services.deadman``):
        their cancels join the commands of the markets concerned. Every engine process
        does it; each switch fires once. A failure is logged and retried at the next check —
        unless the database itself is gone: then run() reconnects at once, as for a market's
        failure, rather than this reopening Django's connection and the markets running on
        while the lock connection (and with it their ownership) is lost."""
        self._next_dead_man = time.monotonic() + deadman.CHECK_S
        try:
            deadman.deadman_fire_due()
        except Exception as error:  # noqa: BLE001 - never stop the markets for it; retried in CHECK_S
            if isinstance(error, database_errors()) and not self._connected():
                raise
            log.exception("firing dead-man switches failed", extra={"alert": "engine_deadman_failing"})
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()

    def run(self) -> None:
        self.acquire()
        # The first iteration fires the dead-man switches (a deadline that passed while no
        # engine ran) before its first batch, inside the loop that reconnects.
        while not self.stopping:
            try:
                self._iterate()
            except database_errors() as error:
                if self._connected():
                    # A transient refusal (a lock, a dropped listener): retry the loop shortly.
                    log.warning("engine database call failed; retrying", exc_info=True)
                    self._close_listener()
                    self._last_acquire = 0.0
                    time.sleep(RECONNECT_S)
                else:
                    self.reconnect(error)
        self.close()

    def _iterate(self) -> None:
        linger = settings.BOURSE_ENGINE_LINGER_MS / 1000
        if self.listener is None or time.monotonic() - self._last_acquire > self.ACQUIRE_EVERY_S:
            self.acquire()
        self.heartbeat.maybe(self.heartbeat_details)
        if time.monotonic() >= self._next_dead_man:
            self.fire_dead_man()
        assert self.listener is not None  # acquire() always leaves one
        if time.monotonic() >= self._recheck_at:
            self._due.update(self.runners)
            self._recheck_at = time.monotonic() + self.IDLE_WAIT_S
        self._due |= self.listener.wait(0)  # woken since the last read: before this read
        done = self.run_once(self._due)
        self._due = {pk for pk in self._due if pk in self._failing
                     or (pk in self.runners and self.runners[pk].more_pending)}
        for runner in self.runners.values():
            runner.flush_settlement()
        if done == 0:  # (what stays due now is backing off after a failure)
            idle = min(self.IDLE_WAIT_S if self.runners else 0.5, max(0.0, self._next_dead_man - time.monotonic()),
                       max(0.0, self._recheck_at - time.monotonic()))
            for runner in self.runners.values():  # wake for the next gtd expiry and deferred settlement, on time
                for due in (runner.seconds_to_expiry(), runner.seconds_to_settlement()):
                    if due is not None:
                        idle = min(idle, due + 0.001)
            woken = self.listener.wait(idle)
            self._due |= woken
            if woken and linger:
                time.sleep(linger)  # let the submissions arriving with this one join its batch
        elif done < settings.BOURSE_ENGINE_BATCH and linger:
            # A partial batch: more are arriving one by one. A batch's commit costs the same
            # for one order as for hundreds, so waiting a moment buys a larger one.
            time.sleep(linger)

    def heartbeat_details(self) -> dict:
        return {"markets": {r.market.symbol: {"token": r.token, "failing": pk in self._failing, "refused": r.refused}
                            for pk, r in self.runners.items()}}

    # -- a lost database -----------------------------------------------------------------------
    def _connected(self) -> bool:
        """Whether both the lock connection and Django's connection still answer."""
        try:
            self.ownership.check()
            return connection.connection is None or connection.is_usable()
        except Exception:  # noqa: BLE001 - any failure of the probe means not connected
            return False

    def _close_listener(self) -> None:
        if self.listener is not None:
            try:
                self.listener.close()
            except Exception:  # noqa: BLE001 - its connection is already gone
                log.debug("closing the wake listener failed", exc_info=True)
            self.listener = None

    def reconnect(self, error: BaseException) -> None:
        """The database is gone: forget every market (their locks went with the connection;
        another process may own them by the time we are back), then reconnect with back-off
        and take ownership again under new fencing tokens — or stand by. Returns when
        reconnected, or when asked to stop."""
        lost = sorted(runner.market.symbol for runner in self.runners.values())
        log.critical(
            "engine lost the database; reconnecting", exc_info=(type(error), error, error.__traceback__),
            extra={"alert": "engine_database_lost", "markets": lost},
        )
        started = time.monotonic()
        self.runners.clear()
        self._failing.clear()
        self._close_listener()
        delay, attempts = RECONNECT_S, 0
        while not self.stopping:
            self.ownership.close()
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the old connection is broken; only its handle goes
                log.debug("closing the broken connection failed", exc_info=True)
            try:
                self.ownership = Ownership()
                self.acquire()
            except database_errors():
                self.runners.clear()  # whatever a half-done acquire took is not ours either
                self._close_listener()
                attempts += 1
                log.warning("engine still without the database; retrying in %.2fs", delay,
                            extra={"attempts": attempts, "retry_in_s": delay})
                deadline = time.monotonic() + delay
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(min(0.1, delay))
                delay = min(RECONNECT_MAX_S, delay * 2)
                continue
            log.warning(
                "engine reconnected to the database",
                extra={"down_s": round(time.monotonic() - started, 3), "attempts": attempts + 1,
                       "markets": sorted(runner.market.symbol for runner in self.runners.values())},
            )
            return

    def close(self) -> None:
        for runner in self.runners.values():
            try:
                runner.flush_settlement(force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out: the sweep settles it
                log.debug("sending a deferred settlement failed", exc_info=True)
        self._close_listener()
        self.ownership.close()

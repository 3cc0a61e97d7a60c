"""Settlement: turn trades and closed orders into ledger journals, exactly once.

Per trade (journal key ``trade:{id}``, unique in the database): the buyer's locked quote
pays the notional and its fee, the seller's locked base goes to the buyer, the seller
receives the notional less its fee, both fees go to the ``fees`` account, and a limit buy
gets back at once what its remaining quantity no longer needs (price improvement, a maker
fee below the taker rate). Per closed order (key ``close:{id}``): whatever is still locked
for it is released. Per amended order (``hold_review``; reference ``amend:{id}``), once all
its fills are settled: what its new price and quantity no longer need is released. Work is
taken in engine order per market — a closure only after all of its order's fills — under
a per-market lock, so concurrent workers and the periodic sweep cannot interleave. Each
chunk is one transaction that also flips the ``settled`` flags, posts all its journals with
a constant number of statements (``ledger.post_many``), and locks every balance row it will
post to up front, in one global order (``ledger.lock_balances``),
so chunks of different markets over the same accounts cannot deadlock.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import Exists, Field, ForeignKey, OuterRef

from accounts import ledger
from accounts.models import Account, Asset, Balance, Bucket, EntryKind
from audit.services import audit_record_rows
from exchange import metrics
from exchange.context import Actor
from exchange.pgarrays import int_array

from . import pricing
from .models import Command, Fill, Market, Order, OutboxEvent, Trade
from .outbox.services import balance_payload, balances_publish, outbox_write

log = logging.getLogger("bourse.settlement")

CHUNK = 200
SETTLEMENT = Actor.system("settlement")
SETTLE_LOCK_CLASS = 0x5354  # pg_advisory_xact_lock(class, market_id)


def _lock_market(market_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SETTLE_LOCK_CLASS, market_id])


_CAST = {"hold_remaining": "numeric", "close_settled": "boolean"}


def _column(name: str) -> str:
    field = Order._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None  # a concrete column, not a reverse relation
    return field.column


def _update_orders(orders: Iterable[Order], fields: list[str]) -> None:
    """Write ``fields`` of ``orders`` (already locked) with ONE ``UPDATE … FROM (VALUES …)`` on
    PostgreSQL. Django's ``bulk_update`` builds a ``CASE`` per row and column: the settlement
    profile showed it as 29 % of a chunk's time. SQLite keeps ``bulk_update`` (exact Decimals)."""
    rows = sorted(orders, key=lambda o: o.pk)
    if not rows:
        return
    if connection.vendor != "postgresql":
        Order.objects.bulk_update(rows, fields)
        return
    columns = [_column(name) for name in fields]
    row = "(%s::bigint" + "".join(f", %s::{_CAST[name]}" for name in fields) + ")"
    params = [value for order in rows for value in (order.pk, *(getattr(order, name) for name in fields))]
    assignments = ", ".join(f"{column} = v.{column}" for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Order._meta.db_table} AS o SET {assignments} "
            f"FROM (VALUES {', '.join([row] * len(rows))}) AS v(id, {', '.join(columns)}) WHERE o.id = v.id",
            params,
        )


def _flag_settled(orders: Iterable[Order], fields: list[str], trade_ids: list[int]) -> None:
    """Write ``fields`` of ``orders`` and flag ``trade_ids``' trades and fills settled. On
    PostgreSQL ONE statement (the orders' ``UPDATE … FROM (VALUES …)`` and the two flag
    updates as data-modifying CTEs); SQLite: ``_update_orders`` and two updates."""
    if connection.vendor != "postgresql" or not trade_ids:
        _update_orders(orders, fields)
        if trade_ids:
            Trade.objects.filter(pk__in=trade_ids).update(settled=True)
            Fill.objects.filter(trade_id__in=trade_ids).update(settled=True)
        return
    rows = sorted(orders, key=lambda o: o.pk)
    ids = int_array(trade_ids)
    params: list[Any] = [ids, ids]
    sql = (f"WITH t AS (UPDATE {Trade._meta.db_table} SET settled = TRUE WHERE id = ANY(%s::bigint[])), "
           f"f AS (UPDATE {Fill._meta.db_table} SET settled = TRUE WHERE trade_id = ANY(%s::bigint[])) ")
    if rows:
        columns = [_column(name) for name in fields]
        row = "(%s::bigint" + "".join(f", %s::{_CAST[name]}" for name in fields) + ")"
        params += [value for order in rows for value in (order.pk, *(getattr(order, name) for name in fields))]
        sql += (f"UPDATE {Order._meta.db_table} AS o SET {', '.join(f'{c} = v.{c}' for c in columns)} "
                f"FROM (VALUES {', '.join([row] * len(rows))}) AS v(id, {', '.join(columns)}) WHERE o.id = v.id")
    else:
        sql += "SELECT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _balance_events(pairs: Iterable[tuple[int, str]], locked: dict[tuple[int, str], Balance], market: Market,
                    ) -> list[OutboxEvent]:
    """The ``balances`` events of the pairs a chunk moved, from the locked rows as
    ``ledger.post_many`` left them (it writes their new amounts back into them): nothing is
    read again. One per pair, by account then asset, as ``outbox.services.balance_events``."""
    scales = {market.base_id: market.base.scale, market.quote_id: market.quote.scale}
    events = []
    for account_id, asset in sorted(set(pairs)):
        row = locked[(account_id, asset)]
        events.append(OutboxEvent(market_id=market.pk, account_id=account_id, channel="balances",
                                  payload=balance_payload(asset, row.available, row.locked, scales[asset])))
    return events


class _Fill(NamedTuple):
    """The columns of a fill settlement needs (no model instance per fill)."""

    trade_id: int
    id: int
    order_id: int
    account_id: int
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    liquidity: str
    order_remaining: Decimal | None


class _Run:
    """What every chunk of one ``settlement_run`` shares, read once per run."""

    def __init__(self, market_id: int):
        self.market = _market(market_id)
        self._fees_id: int | None = None

    @property
    def fees_id(self) -> int:
        if self._fees_id is None:
            found = None
            if connection.vendor == "postgresql":  # a prepared statement, not the ORM's get_or_create
                with connection.cursor() as cursor:
                    cursor.execute(_FEES_SQL, [Account.SystemRole.FEES])
                    found = cursor.fetchone()
            self._fees_id = found[0] if found else ledger.system_account(Account.SystemRole.FEES).pk
        return self._fees_id


_FEES_SQL = f"SELECT id FROM {Account._meta.db_table} WHERE system_role = %s"
_market_sql: dict[int, tuple[str, tuple[Any, ...]]] = {}  # market id -> the compiled query


def _market(market_id: int) -> Market:
    """The market with its two assets, read fresh for every run (fee changes apply at once).
    PostgreSQL: compiled once per process and market, its row split into the three instances
    as ``select_related`` would (compiling it was a sixth of a small run's CPU)."""
    query = Market.objects.select_related("base", "quote").filter(pk=market_id)
    if connection.vendor != "postgresql":
        return query.get()
    compiled = _market_sql.get(market_id)
    if compiled is None:
        compiled = _market_sql[market_id] = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(*compiled)
        row = cursor.fetchone()
    if row is None:
        raise Market.DoesNotExist(market_id)
    width = len(_MARKET_COLUMNS)
    market = Market.from_db(connection.alias, _MARKET_COLUMNS, row[:width])
    assets = len(_ASSET_COLUMNS)
    for name, start in (("base", width), ("quote", width + assets)):
        asset = Asset.from_db(connection.alias, _ASSET_COLUMNS, row[start:start + assets])
        relation = Market._meta.get_field(name)
        assert isinstance(relation, ForeignKey)  # base and quote are foreign keys to Asset
        relation.set_cached_value(market, asset)
    return market


_MARKET_COLUMNS = [f.attname for f in Market._meta.concrete_fields]
_ASSET_COLUMNS = [f.attname for f in Asset._meta.concrete_fields]


def settlement_run(market_id: int) -> tuple[int, int]:
    """Settle every unsettled trade, then every closed order, of one market.
    Returns ``(trades settled, orders closed)``; safe to run concurrently and repeatedly."""
    trades = closed = 0
    trades_due, closures_due, reviews_due = _due(market_id)
    if trades_due or closures_due:
        run = _Run(market_id)
    while trades_due:
        done = _settle_trades(run)
        trades += done
        if done < CHUNK:
            break
    metrics.SETTLEMENT_TRADES.inc(trades)
    while closures_due:
        done = _settle_closures(run)
        closed += done
        if done < CHUNK:
            break
    while reviews_due and _settle_reviews(market_id) == CHUNK:
        pass
    return trades, closed


# The closed statuses as literals, not parameters: the partial index order_close_due matches
# them in any plan, a generic one of a prepared statement included.
_CLOSED = ", ".join(f"'{status}'" for status in Order.CLOSED_STATUSES)


def _due(market_id: int) -> tuple[bool, bool, bool]:
    """Whether the market has unsettled trades, unsettled closures, hold reviews — ONE
    statement over the partial indexes, so a pass with nothing to do costs nothing (each
    pass's ORM queries cost ~3 ms of CPU to compile: an idle run cost 10 ms). What appears
    after it is the next run's: every engine batch that makes trades or closes orders sends
    a task after its commit, and the periodic sweep catches the rest."""
    trade, order = Trade._meta.db_table, Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS(SELECT 1 FROM {trade} WHERE market_id = %s AND NOT settled), "
            f"EXISTS(SELECT 1 FROM {order} WHERE market_id = %s AND status IN ({_CLOSED}) AND NOT close_settled), "
            f"EXISTS(SELECT 1 FROM {order} WHERE market_id = %s AND hold_review)",
            [market_id, market_id, market_id],
        )
        row = cursor.fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    return bool(row[0]), bool(row[1]), bool(row[2])


def settlement_sweep() -> dict[str, tuple[int, int]]:
    """Settle whatever a lost task message left behind, in every market that has work."""
    unsettled_trades = Trade.objects.filter(market=OuterRef("pk"), settled=False)
    unsettled_closures = Order.objects.filter(
        market=OuterRef("pk"), status__in=Order.CLOSED_STATUSES, close_settled=False
    )
    reviews = Order.objects.filter(market=OuterRef("pk"), hold_review=True)
    markets = Market.objects.filter(Exists(unsettled_trades) | Exists(unsettled_closures) | Exists(reviews))
    return {market.symbol: settlement_run(market.pk) for market in markets}


_FILL_COLUMNS = ("trade_id", "id", "order_id", "account_id", "side", "price", "quantity", "fee", "liquidity",
                 "order_remaining")
_ORDER_COLUMNS = [f.attname for f in Order._meta.concrete_fields]
_ORDERS_SQL = (
    f"SELECT {', '.join(f.column for f in Order._meta.concrete_fields)} FROM {Order._meta.db_table} "
    f"WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE"
)
_FILLS_SQL = (
    f"SELECT {', '.join(_FILL_COLUMNS)} FROM {Fill._meta.db_table} WHERE trade_id IN ("
    f"SELECT id FROM {Trade._meta.db_table} WHERE market_id = %s AND NOT settled ORDER BY id LIMIT %s"
    f") ORDER BY trade_id, id"
)


def _chunk_fills(market_id: int) -> Iterable[tuple[Any, ...]]:
    """The fills of the market's next ``CHUNK`` unsettled trades, as tuples of
    ``_FILL_COLUMNS``, in trade order (PostgreSQL: a prepared statement; SQLite: the ORM,
    whose converters keep the decimals exact)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_FILLS_SQL, [market_id, CHUNK])
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows
    chunk = Trade.objects.filter(market_id=market_id, settled=False).order_by("id").values("id")[:CHUNK]
    return Fill.objects.filter(trade_id__in=chunk).order_by("trade_id", "id").values_list(*_FILL_COLUMNS)


def _orders_for_update(ids: Iterable[int]) -> list[Order]:
    """The orders, locked in primary-key order (PostgreSQL: a prepared statement; Django
    compiled a ``SELECT … FOR UPDATE`` per chunk)."""
    if connection.vendor != "postgresql":
        return list(Order.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk"))
    with connection.cursor() as cursor:
        cursor.execute(_ORDERS_SQL, [int_array(ids)])
        rows = cursor.fetchall()
    return [Order.from_db(connection.alias, _ORDER_COLUMNS, row) for row in rows]


def _settle_trades(run: _Run) -> int:
    """One chunk of trades: a constant number of statements whatever its size (the fills of
    the chunk's trades in one read, as tuples; one ledger statement; one statement for the
    orders' holds and the settled flags; the outbox and audit rows)."""
    market = run.market
    with transaction.atomic(durable=True):
        _lock_market(market.pk)
        fills: dict[int, dict[str, _Fill]] = {}
        for values in _chunk_fills(market.pk):
            fill = _Fill(*values)
            fills.setdefault(fill.trade_id, {})[fill.liquidity] = fill
        if not fills:
            return 0
        order_ids = {f.order_id for pair in fills.values() for f in pair.values()}
        orders = {o.pk: o for o in _orders_for_update(order_ids)}
        for order in orders.values():
            order.market = market  # one market per run: no query per order for its filters
        any_fee = any(f.fee for pair in fills.values() for f in pair.values())
        fees_id = run.fees_id if any_fee else 0
        moved = {(f.account_id, asset) for pair in fills.values() for f in pair.values()
                 for asset in (market.base_id, market.quote_id)}
        # One journal per trade (its orders' remaining holds updated in memory).
        postings = [_settle_trade(trade_id, pair, orders, market, fees_id) for trade_id, pair in fills.items()]
        # What needs no balance first: the balance rows are the accounts' hot rows (every order
        # of theirs takes its hold there), so they are locked for the last statements only.
        _flag_settled(orders.values(), ["hold_remaining"], list(fills))
        audit_record_rows(
            "fill.settled",
            [(("trading.fill", f.id), f.account_id,
              {"trade_id": f.trade_id, "order_id": f.order_id, "price": f.price, "quantity": f.quantity, "fee": f.fee})
             for pair in fills.values() for f in pair.values()],
            actor=SETTLEMENT,
        )
        # Every balance row the chunk's journals touch, locked now in one global order: locked
        # journal by journal, two markets' chunks over the same accounts could deadlock.
        locked = ledger.lock_balances(moved | ({(fees_id, market.quote_id)} if any_fee else set()))
        # The journals, all written by one statement (PostgreSQL), from the rows locked above.
        ledger.post_many(postings, locked=locked)
        # The `balances` WebSocket events of every account the chunk moved, one row per account.
        outbox_write(_balance_events(moved, locked, market), batched=True)
        return len(fills)


def _settle_trade(trade_id: int, fills: dict[str, _Fill], orders: dict[int, Order], market: Market,
                  fees_id: int) -> ledger.Posting:
    """The trade's journal (its orders' remaining holds updated in memory)."""
    taker, maker = fills[Fill.Liquidity.TAKER], fills[Fill.Liquidity.MAKER]
    buy, sell = (taker, maker) if taker.side == Order.Side.BUY else (maker, taker)
    buy_order, sell_order = orders[buy.order_id], orders[sell.order_id]
    base, quote = market.base_id, market.quote_id
    quantity = taker.quantity
    notional = taker.price * quantity
    legs = [
        ledger.Leg(buy.account_id, quote, Bucket.LOCKED, -notional, EntryKind.TRADE),
        ledger.Leg(sell.account_id, quote, Bucket.AVAILABLE, notional, EntryKind.TRADE),
        ledger.Leg(sell.account_id, base, Bucket.LOCKED, -quantity, EntryKind.TRADE),
        ledger.Leg(buy.account_id, base, Bucket.AVAILABLE, quantity, EntryKind.TRADE),
    ]
    if buy.fee:
        legs.append(ledger.Leg(buy.account_id, quote, Bucket.LOCKED, -buy.fee, EntryKind.FEE))
    if sell.fee:
        legs.append(ledger.Leg(sell.account_id, quote, Bucket.AVAILABLE, -sell.fee, EntryKind.FEE))
    if buy.fee + sell.fee:
        legs.append(ledger.Leg(fees_id, quote, Bucket.AVAILABLE, buy.fee + sell.fee, EntryKind.FEE))
    buy_order.hold_remaining -= notional + buy.fee
    sell_order.hold_remaining -= quantity
    for order, fill in ((buy_order, buy), (sell_order, sell)):
        excess = _excess(order, fill)
        if excess:
            legs += ledger.release_legs(order.account_id, order.hold_asset_id, excess)
            order.hold_remaining -= excess
    return ledger.Posting(EntryKind.TRADE, legs, reference=f"trade:{trade_id}", idempotency_key=f"trade:{trade_id}")


def _excess(order: Order, fill: _Fill) -> Decimal:
    """What a limit order holds beyond what its remaining quantity needs after this fill.
    Market orders keep their hold until they close (they may fill several times at once).
    An order under amend review is left alone: its fills may straddle a price change, and
    ``_settle_reviews`` releases its excess from its current state once its fills are settled."""
    if not order.is_limit_form or order.hold_review:
        return Decimal(0)
    excess: Decimal = order.hold_remaining - pricing.required_hold(order, fill.order_remaining)
    if excess < 0:  # would mean the hold did not cover the worst case: a bug, never hidden
        raise AssertionError(f"order {order.pk} under-held by {-excess} after fill {fill.id}")
    return excess


# The market and the limit are literals, as the closed statuses (_CLOSED): with any of them a
# parameter, PostgreSQL re-planned the statement on every run of a market quieter than the
# average (tests/trading/test_plan_cache.py). No "%" in the text: it is run without parameters.
_CLOSING_SQL = (
    f"SELECT {', '.join('o.' + f.column for f in Order._meta.concrete_fields)} FROM {Order._meta.db_table} o "
    f"WHERE o.market_id = {{market:d}} AND o.status IN ({_CLOSED}) AND NOT o.close_settled "
    f"AND NOT EXISTS (SELECT 1 FROM {Fill._meta.db_table} f WHERE f.order_id = o.id AND NOT f.settled) "
    f"ORDER BY o.id LIMIT {CHUNK:d} FOR UPDATE OF o"
)


def _closing_orders(market_id: int) -> list[Order]:
    """The next ``CHUNK`` closed orders of the market whose fills are all settled, locked in
    primary-key order. PostgreSQL: ``_CLOSING_SQL`` (planned once per connection and market),
    its rows made instances with ``from_db``; SQLite: the ORM."""
    if connection.vendor != "postgresql":
        unsettled_fill = Fill.objects.filter(order=OuterRef("pk"), settled=False)
        return list(Order.objects.select_for_update(of=("self",))
                    .filter(market_id=market_id, status__in=Order.CLOSED_STATUSES, close_settled=False)
                    .exclude(Exists(unsettled_fill))
                    .order_by("pk")[:CHUNK])
    with connection.cursor() as cursor:
        cursor.execute(_CLOSING_SQL.format(market=int(market_id)))
        rows = cursor.fetchall()
    return [Order.from_db(connection.alias, _ORDER_COLUMNS, row) for row in rows]


def _settle_closures(run: _Run) -> int:
    market_id = run.market.pk
    with transaction.atomic(durable=True):
        _lock_market(market_id)
        orders = _closing_orders(market_id)
        released, postings = set(), []
        for order in orders:
            if order.hold_remaining:
                released.add((order.account_id, order.hold_asset_id))
                postings.append(ledger.Posting(
                    EntryKind.RELEASE,
                    ledger.release_legs(order.account_id, order.hold_asset_id, order.hold_remaining),
                    reference=f"order:{order.pk}",
                    idempotency_key=f"close:{order.pk}",
                ))
                order.hold_remaining = Decimal(0)
            order.close_settled = True
        _update_orders(orders, ["hold_remaining", "close_settled"])
        # The balance rows last, all in one order (see _settle_trades), for the last statements only.
        locked = ledger.lock_balances(released)
        ledger.post_many(postings, locked=locked)
        # The `balances` WebSocket events, one row per account (from the rows as written).
        outbox_write(_balance_events(released, locked, run.market), batched=True)
        return len(orders)


def _settle_reviews(market_id: int) -> int:
    """Release what amended orders hold beyond their current need (their price and
    remaining quantity now), for orders whose fills are all settled — so ``hold_remaining``
    is exactly what they still hold. A closed order is left to its closure."""
    with transaction.atomic(durable=True):
        _lock_market(market_id)
        unsettled_fill = Fill.objects.filter(order=OuterRef("pk"), settled=False)
        orders = list(
            Order.objects.select_for_update(of=("self",))
            .select_related("market__quote", "market__base")
            .filter(market_id=market_id, hold_review=True)
            .exclude(Exists(unsettled_fill))
            .exclude(Exists(Command.objects.filter(order=OuterRef("pk"), kind=Command.Kind.AMEND, processed=False)))
            .order_by("pk")[:CHUNK]
        )
        # Re-read under the locks (a fresh statement): an amend still queued for the engine
        # (its hold already taken) or a fill not yet settled keeps the review open.
        busy = set(
            Command.objects.filter(order__in=orders, kind=Command.Kind.AMEND, processed=False)
            .values_list("order_id", flat=True)
        ) | set(Fill.objects.filter(order__in=orders, settled=False).values_list("order_id", flat=True))
        orders = [o for o in orders if o.pk not in busy]
        releases: dict[Order, Decimal] = {}
        for order in orders:
            if order.is_closed or order.quantity is None:
                continue
            excess = order.hold_remaining - pricing.required_hold(order, order.quantity - order.filled_quantity)
            if excess > 0:
                releases[order] = excess
        locked = ledger.lock_balances({(o.account_id, o.hold_asset_id) for o in releases})
        postings = []
        for order, excess in releases.items():
            postings.append(ledger.Posting(
                EntryKind.RELEASE, ledger.release_legs(order.account_id, order.hold_asset_id, excess),
                reference=f"amend:{order.pk}",
            ))
            order.hold_remaining -= excess
        for order in orders:
            order.hold_review = False
        ledger.post_many(postings, locked=locked)
        Order.objects.bulk_update(orders, ["hold_remaining", "hold_review"])
        balances_publish({(o.account_id, o.hold_asset_id) for o in releases}, market_id)
        return len(orders)

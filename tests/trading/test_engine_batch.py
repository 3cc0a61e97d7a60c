"""The engine's batch write amortises: its statement count does not grow with the batch, it
writes one outbox row per stream per batch (readers still see one event per order and fill,
gap-free per stream), and its verdict message carries each order's committed state so a
waiter answers without reading the database."""
import itertools
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AccountFactory
from tests.support import fund, pg_trace
from trading import notify
from trading.models import Order, OutboxEvent
from trading.outbox import selectors as outbox
from trading.services import order_submit, order_wait

pytestmark = pytest.mark.django_db(transaction=True)


def traders(count):
    accounts = []
    for index in range(count):
        account = AccountFactory(name=f"t{index}")
        fund(account, USD="100000", BTC="100")
        accounts.append(account)
    return accounts


def crossing_flow(accounts, pairs):
    """``pairs`` resting sells met by as many buys, spread over ``accounts``: every buy trades."""
    cycle = itertools.cycle(accounts)
    for _ in range(pairs):
        order_submit(account=next(cycle), market="BTC-USD", side="sell", type="limit", price="100.00", quantity="0.1000")
        order_submit(account=next(cycle), market="BTC-USD", side="buy", type="limit", price="100.00", quantity="0.1000")


def batch_statements(runner):
    runner._market_read_at = time.monotonic()  # no once-a-second market re-read inside the measurement
    with CaptureQueriesContext(connection) as queries:
        done = runner.step()
    return done, [q["sql"] for q in queries.captured_queries]


def test_statements_per_batch_do_not_grow_with_the_batch(runner, market, monkeypatch, settings):
    settings.BOURSE_AUDIT_SEAL_MODE = "off"
    monkeypatch.setattr(runner, "_enqueue_settlement", lambda: None)  # settlement is its own process
    accounts = traders(4)
    crossing_flow(accounts, 2)
    small_done, small = batch_statements(runner)
    crossing_flow(accounts, 30)  # (within SQLite's 999 bound parameters per statement)
    large_done, large = batch_statements(runner)
    assert (small_done, large_done) == (4, 60)
    # Same statements for 4 commands (2 trades) as for 60 (30 trades): orders, trades,
    # fills, command outcomes, sequences and outbox rows are each written set-wise.
    assert len(large) == len(small), "\n".join(large)
    # PostgreSQL 10: command read, fence, orders, trades and fills (one statement), candles,
    # command outcomes, sequences, outbox rows, and the savepoint pair; SQLite 11 (trades and
    # fills are two inserts there).
    assert len(large) <= (10 if connection.vendor == "postgresql" else 11), "\n".join(large)
    # Ids are drawn in match order (settlement takes trades by id, and a later fill of an
    # order settled first would release the hold an earlier one still needs).
    from trading.models import Fill, Trade

    sequences = list(Trade.objects.order_by("id").values_list("sequence", flat=True))
    assert sequences == sorted(sequences) and len(sequences) == 32
    fills = list(Fill.objects.order_by("id").values_list("trade__sequence", "liquidity"))
    assert fills == sorted(fills, key=lambda f: (f[0], f[1] != "taker"))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's pipeline and libpq's trace")
def test_a_batch_waits_for_the_database_only_where_it_reads(runner, market, monkeypatch):
    """A batch's writes are pipelined (``exchange.pgpipeline``): the engine waits for
    PostgreSQL at the command read, psycopg's ``BEGIN``, the reads of the batch's own rows
    (the trades' and fills' ids; the outbox rows' ids and sequences, one statement with the
    counters' bump), the pipeline's end and the commit, not once per statement. Sent one by
    one, with the bump a statement of its own, a one-order batch waited 8 times."""
    monkeypatch.setattr(runner, "_enqueue_settlement", lambda: None)  # settlement is its own process
    accounts = traders(2)
    runner._market_read_at = time.monotonic()  # no once-a-second market re-read inside the measurement
    order_submit(account=accounts[0], market="BTC-USD", side="sell", type="limit", price="100.00", quantity="0.1000")
    with pg_trace() as trace:
        assert runner.step() == 1
    assert trace.round_trips == 5, str(trace)
    crossing_flow(accounts, 1)  # the buy trades with both resting sells' first
    with pg_trace() as trace:
        assert runner.step() == 2
    assert trace.round_trips == 6, str(trace)  # + the trades and fills' ids
    assert Order.objects.filter(status="pending").count() == 0


def test_a_statement_failing_behind_a_lost_fence_is_the_lost_ownership(runner, market, monkeypatch):
    """The fence's answer is read after the batch's other statements were sent: when one of
    them fails and the fence had not matched, the runner reports the lost ownership (the
    process gives the market up) instead of a faulty command (which it would quarantine), and
    nothing of the batch commits."""
    from trading import runner as runner_module
    from trading.models import Command, EngineState

    accounts = traders(1)
    order_submit(account=accounts[0], market="BTC-USD", side="sell", type="limit", price="100.00", quantity="0.1000")
    EngineState.objects.filter(market=market).update(owner_token="someone-else")

    def failing(done):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")  # a statement of the batch that fails
            cursor.fetchall()

    monkeypatch.setattr(runner_module, "_mark_processed", failing)
    with pytest.raises(runner_module.LostOwnership):
        runner.step()
    assert Order.objects.get().status == "pending" and not Command.objects.filter(processed=True).exists()


def test_one_outbox_row_per_stream_per_batch_and_gapless_events(runner, market):
    accounts = traders(3)
    crossing_flow(accounts, 9)  # 18 orders, 9 trades over three accounts
    before = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    runner.step()
    rows = list(OutboxEvent.objects.filter(id__gt=before).values("market_id", "account_id", "channel"))
    streams = {(r["channel"], r["account_id"], r["market_id"] if r["account_id"] is None else None) for r in rows}
    assert len(rows) == len(streams)  # no stream has two rows from one batch
    assert {"book", "trades"} <= {c for c, a, _ in streams if a is None}
    # Readers see one event per trade, per order and per fill, with consecutive sequences.
    events = outbox.events_after_id(before, [market.pk], [a.pk for a in accounts])
    assert sum(e["channel"] == "trades" for e in events) == 9
    assert sum(e["channel"] == "fills" for e in events) == 18
    for account in accounts:
        for channel in ("orders", "fills"):
            sequences = [e["sequence"] for e in outbox.private_events(account.pk, channel, 0)]
            assert sequences == list(range(1, len(sequences) + 1))
    # A gap fill in the middle of a batched row returns exactly the events asked for.
    account = accounts[0]
    whole = outbox.private_events(account.pk, "orders", 0)
    assert len(whole) >= 4
    middle = outbox.private_events(account.pk, "orders", 1, 4)
    assert [e["sequence"] for e in middle] == [2, 3]
    assert [e["payload"] for e in middle] == [whole[1]["payload"], whole[2]["payload"]]
    book = outbox.book_events(market.pk, 0)
    assert [e["sequence"] for e in book] == sorted(e["sequence"] for e in book)
    assert len({e["sequence"] for e in book}) == len(book)


def test_the_verdict_message_carries_the_state_and_the_waiter_reads_nothing(runner, market):
    (alice,) = traders(1)
    waiter = notify.VerdictWaiter.get()
    order = order_submit(account=alice, market="BTC-USD", side="buy", type="limit", price="99.00",
                         quantity="1.0000").order
    runner.step()
    verdict = None
    for _ in range(200):
        verdict = waiter.verdict(order.pk)
        if verdict is not None:
            break
        time.sleep(0.01)
    assert verdict is not None and verdict.status == Order.Status.OPEN
    with CaptureQueriesContext(connection) as queries:
        answered = order_wait(order, 2.0, waiter, fresh=True)
    assert answered.status == Order.Status.OPEN
    assert answered.sequence == Order.objects.get(pk=order.pk).sequence
    assert [q["sql"] for q in queries.captured_queries] == []  # before: a re-read of the order per signal


def test_verdicts_round_trip_and_hints_mean_read_again():
    from datetime import UTC, datetime
    from decimal import Decimal

    verdict = notify.Verdict(7, "partially_filled", Decimal("0.5000"), Decimal("50.0000"), 3, "", "",
                             datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    many = [notify.Verdict(i, *[getattr(verdict, f) for f in ("status", "filled_quantity", "filled_quote",
                                                                "sequence", "cancel_reason", "reject_reason",
                                                                "updated_at")]) for i in range(200)]
    payloads = list(notify.encode_verdicts([verdict, *many], hints=[9]))
    assert len(payloads) > 1 and all(len(p) <= notify.MAX_PAYLOAD for p in payloads)
    decoded = [notify.decode_verdicts(p) for p in payloads]
    assert decoded[0][0][0] == verdict
    assert [h for _, hints in decoded for h in hints] == [9]
    assert sum(len(v) for v, _ in decoded) == 201
    assert notify.decode_verdicts("4,5") == ([], [4, 5])  # a bare id list: hints


def test_the_fix_tail_reads_each_markets_events_above_its_floor(runner, market, usd):
    """``account_events_after`` (the FIX report reader's tail, read after every batch; one
    prepared statement on PostgreSQL) returns exactly what the plain filter does: the
    accounts' events on the channels, above each market's own floor, batched rows expanded,
    in id order; a market without a floor is not read."""
    from tests.factories import AssetFactory, MarketFactory

    accounts = traders(3)
    other = MarketFactory(base=AssetFactory(code="ETH", scale=8), quote=usd)
    start = outbox.latest_event_id()
    crossing_flow(accounts, 6)
    runner.step()
    middle = outbox.latest_event_id()
    for account in accounts[:2]:
        OutboxEvent.objects.create(market=other, account=account, channel="orders", sequence=None,
                                   payload={"order_id": "1", "note": "other market"})
        OutboxEvent.objects.create(market=other, account=account, channel="balances", sequence=None,
                                   payload=[{"asset": "USD"}])
    crossing_flow(accounts, 3)
    runner.step()

    def expected(watched, floors, channels=("orders", "fills")):
        rows = (OutboxEvent.objects.filter(account_id__in=watched, channel__in=channels, market_id__in=list(floors))
                .order_by("id").values("id", "market_id", "account_id", "channel", "payload"))
        return list(outbox.expand(r for r in rows if r["id"] > floors[r["market_id"]]))

    watched = [accounts[0].pk, accounts[2].pk]
    cases = [
        {market.pk: start, other.pk: start},
        {market.pk: middle, other.pk: start},
        {market.pk: start},  # the other market has no floor: not read
        {other.pk: start, 999_999: 0},  # a floor for a market with no events
        {market.pk: outbox.latest_event_id(), other.pk: outbox.latest_event_id()},
    ]
    for floors in cases:
        got = outbox.account_events_after(watched, floors)
        assert got == expected(watched, floors), floors
    assert any(e["market_id"] == other.pk for e in outbox.account_events_after(watched, cases[0]))
    assert len(outbox.account_events_after(watched, cases[0])) > len(outbox.account_events_after(watched, cases[1])) > 0
    assert outbox.account_events_after(watched, cases[-1]) == []
    assert outbox.account_events_after([], cases[0]) == [] and outbox.account_events_after(watched, {}) == []
    # every event of a batched row is there, each with the row's id (the reader's floors are row ids)
    got = outbox.account_events_after(watched, cases[0])
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    assert {e["channel"] for e in got} == {"orders", "fills"}
    assert {e["channel"] for e in outbox.account_events_after(watched, cases[0], channels=("balances",))} == {"balances"}

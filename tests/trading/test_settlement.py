"""Settlement applies each trade and each closure exactly once; reconciliation proves it
and catches a corrupted balance."""
from decimal import Decimal as D
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from accounts import ledger
from accounts.models import Balance, Journal
from exchange.celery import app as celery_app
from tests.factories import AccountFactory
from tests.support import balances, fund
from trading.models import Fill, Order, ReconciliationReport, Trade
from trading.reconciliation import reconciliation_run
from trading.services import order_submit
from trading.settlement import settlement_run, settlement_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_inline_settlement():
    """Let trades pile up unsettled, as when a task message is lost."""
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_eager_propagates = False
    from trading import tasks

    original = tasks.settle_market.delay
    tasks.settle_market.delay = lambda *args, **kwargs: None  # the message is "lost"
    yield
    tasks.settle_market.delay = original
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture
def traded(runner, market):
    alice, bob = AccountFactory(), AccountFactory()
    fund(alice, USD="1000", BTC="10")
    fund(bob, USD="1000", BTC="10")
    order_submit(account=alice, market="BTC-USD", side="sell", type="limit", price="100.00", quantity="1.0000")
    runner.step()
    order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="100.00", quantity="0.3000",
                 time_in_force="ioc")
    order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="99.00", quantity="0.5000")
    return alice, bob


def test_sweep_settles_what_a_lost_message_left_and_a_second_run_does_nothing(no_inline_settlement, runner, traded, market):
    alice, bob = traded
    runner.step()
    assert Trade.objects.filter(settled=False).count() == 1
    assert balances(bob)["BTC"] == (D("10"), D(0))  # not yet settled

    assert settlement_sweep() == {"BTC-USD": (1, 1)}  # one trade, one closed (filled IOC) order
    journals = Journal.objects.count()
    assert settlement_sweep() == {}
    assert settlement_run(market.pk) == (0, 0)
    assert Journal.objects.count() == journals
    assert balances(bob)["BTC"] == (D("10.3"), D(0))
    assert not Fill.objects.filter(settled=False).exists()
    assert reconciliation_run().ok


def test_the_same_trade_cannot_be_posted_twice(no_inline_settlement, runner, traded, market):
    runner.step()
    settlement_run(market.pk)
    trade = Trade.objects.get()
    with transaction.atomic(), pytest.raises(ledger.AlreadyPosted):
        ledger.post("trade", ledger.hold_legs(trade.taker_order.account_id, "USD", D("1")),
                    idempotency_key=f"trade:{trade.pk}")


def test_closure_waits_for_its_fills(no_inline_settlement, runner, traded, market):
    runner.step()
    ioc = Order.objects.get(time_in_force="ioc")
    assert ioc.status == "filled" and not ioc.close_settled
    settlement_run(market.pk)
    ioc.refresh_from_db()
    assert ioc.close_settled and ioc.hold_remaining == 0


def test_reconciliation_passes_then_detects_a_corrupted_balance(runner, traded):
    runner.step()
    assert reconciliation_run().ok
    alice, _ = traded
    # someone edits a balance behind the ledger's back
    Balance.objects.filter(account=alice, asset_id="USD").update(available=D("5000"))

    report = reconciliation_run()
    assert not report.ok
    failed = {c["check"]: c for c in report.checks if not c["ok"]}
    assert set(failed) == {"balances_match_entries", "assets_conserved"}
    (mismatch,) = failed["balances_match_entries"]["mismatches"]
    assert (mismatch["account"], mismatch["asset"], mismatch["bucket"]) == (alice.pk, "USD", "available")
    assert D(mismatch["balance"]) == D("5000") and D(mismatch["entries"]) == D("1029.97")  # 1000 + 30.00 - 0.03 maker fee
    assert ReconciliationReport.objects.filter(ok=False).count() == 1


def test_reconciliation_detects_a_hold_that_no_order_explains(runner, traded):
    runner.step()
    alice, _ = traded
    Balance.objects.filter(account=alice, asset_id="BTC").update(locked=D("0.1"))
    failed = {c["check"] for c in reconciliation_run().checks if not c["ok"]}
    assert "locked_matches_orders" in failed


def test_reconcile_command_exit_status(runner, traded):
    runner.step()
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert "ok" in out.getvalue()
    alice, _ = traded
    Balance.objects.filter(account=alice, asset_id="USD").update(available=D("1"))
    with pytest.raises(CommandError, match="mismatches"):
        call_command("reconcile", stdout=StringIO())


def _crossing(accounts, pairs):
    for index in range(pairs):
        seller, buyer = accounts[index % len(accounts)], accounts[(index + 1) % len(accounts)]
        order_submit(account=seller, market="BTC-USD", side="sell", type="limit", price="100.00", quantity="0.1000")
        order_submit(account=buyer, market="BTC-USD", side="buy", type="limit", price="100.00", quantity="0.1000")


def test_statements_per_settlement_run_do_not_grow_with_the_trades(no_inline_settlement, runner, market, settings):
    """A run's statements are a constant number per chunk: 2 trades and 40 trades (and the
    closures of their filled orders) cost the same statements, and the ledger, the balance
    events and the audit trail are all there."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent
    from trading.models import OutboxEvent

    settings.BOURSE_AUDIT_SEAL_MODE = "off"
    accounts = [AccountFactory() for _ in range(4)]
    for account in accounts:
        fund(account, USD="100000", BTC="100")
    _crossing(accounts, 1)  # the first trade creates the fees account's balance row: not measured
    runner.step()
    settlement_run(market.pk)
    counts = []
    # Every account and balance row touched in both. SQLite: within its 999 bound parameters
    # per statement (beyond them Django splits an INSERT).
    sizes = (4, 40) if connection.vendor == "postgresql" else (4, 10)
    for pairs in sizes:
        _crossing(accounts, pairs)
        runner.step()
        with CaptureQueriesContext(connection) as queries:
            assert settlement_run(market.pk) == (pairs, 2 * pairs)
        counts.append([q["sql"] for q in queries.captured_queries])
    assert len(counts[0]) == len(counts[1]), "\n".join(q[:100] for q in counts[0]) + "\n----\n" + "\n".join(q[:100] for q in counts[1])
    assert len(counts[1]) <= (22 if connection.vendor == "postgresql" else 34), "\n".join(counts[1])
    assert not Fill.objects.filter(settled=False).exists()
    assert Journal.objects.filter(reference__startswith="trade:").count() == 1 + sum(sizes)
    assert AuditEvent.objects.filter(action="fill.settled").count() == 2 * (1 + sum(sizes))
    assert OutboxEvent.objects.filter(channel="balances").exists()
    assert all(balances(account)["BTC"][1] == 0 for account in accounts)  # every hold released
    assert reconciliation_run().ok


def test_the_engine_sends_at_most_one_settlement_task_per_interval(runner, market, settings, monkeypatch):
    """Batches committed within BOURSE_SETTLE_EVERY_MS of a sent task share ONE deferred task,
    sent by ``flush_settlement`` once the interval is over; nothing committed is left without
    a task sent after its commit."""
    from trading import runner as runner_module
    from trading import tasks

    settings.BOURSE_SETTLE_EVERY_MS = 50
    sent = []
    original = tasks.settle_market.delay
    celery_app.conf.task_always_eager = False
    tasks.settle_market.delay = lambda market_id: sent.append(market_id)
    try:
        _deferred(runner, market, sent, runner_module, monkeypatch)
    finally:
        tasks.settle_market.delay = original
        celery_app.conf.task_always_eager = True


def _deferred(runner, market, sent, runner_module, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: clock[0])
    accounts = [AccountFactory() for _ in range(2)]
    for account in accounts:
        fund(account, USD="100000", BTC="100")
    _crossing(accounts, 1)
    runner.step()
    assert sent == [market.pk]  # the first goes at once
    for _ in range(3):
        clock[0] += 0.01
        _crossing(accounts, 1)
        runner.step()
    assert sent == [market.pk]  # deferred: one task will settle all three batches
    assert runner.seconds_to_settlement() == pytest.approx(0.02)
    runner.flush_settlement()
    assert sent == [market.pk]  # not yet due
    clock[0] += 0.02
    runner.flush_settlement()
    assert sent == [market.pk, market.pk] and runner.seconds_to_settlement() is None
    runner.flush_settlement()
    assert len(sent) == 2  # nothing more was deferred
    assert settlement_run(market.pk) == (4, 8)

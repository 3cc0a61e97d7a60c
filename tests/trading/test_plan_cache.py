"""The engine's and settlement's recurring reads are planned once per connection, not on every
execution. psycopg prepares a statement run ``DB_PREPARE_THRESHOLD`` times; PostgreSQL makes
custom plans (for the values given) for its first five runs, then keeps a generic plan only if
that looks no dearer than the custom ones — and for a market quieter than the average (a new
one, a small one beside a busy one) the custom plan always looks cheaper, so with the market,
the limit or a partial index's predicate as parameters the statement was planned again on every
run: 0.27 ms of PostgreSQL's CPU per engine read under load, more than running it. They are
literals in these statements; ``pg_prepared_statements`` counts a statement's generic and
custom plans on this connection. The FIX reader's tail read cannot take its floors as
literals: it is a function that forces its own generic plan (migration trading/0013). The last
test looks for the whole class: every statement the order path repeats."""
import pytest
from django.db import connection, transaction

from tests.factories import AccountFactory, AssetFactory, MarketFactory
from tests.support import fund
from trading import settlement
from trading.models import Order
from trading.runner import MarketRunner
from trading.services import order_submit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's plan cache"),
]

RUNS = 12  # the first DB_PREPARE_THRESHOLD (5) run unprepared; five custom plans at most after that
BUSY_ROWS = 3000


def plans_of(fragment: str) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                       [f"%{fragment}%"])
        rows = cursor.fetchall()
    assert len(rows) == 1, rows  # prepared (run more than the threshold), once
    return rows[0]


@pytest.fixture
def busy_market(usd):
    """Another market with many pending commands and many closed orders awaiting settlement,
    analysed: the statistics that make the test market look quiet beside it."""
    busy = MarketFactory(base=AssetFactory(code="ETH", scale=8), quote=usd)
    account = AccountFactory()
    fund(account, USD="100000")
    order = order_submit(account=account, market=busy.symbol, side="buy", type="limit", price="100.00",
                         quantity="0.0200", client_order_id="busy").order
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO trading_command (market_id, kind, order_id, created_at, processed, result, reason) "
                       "SELECT market_id, kind, order_id, created_at, FALSE, '', '' FROM trading_command, "
                       "generate_series(1, %s) WHERE order_id = %s", [BUSY_ROWS, order.pk])
        columns = [f.column for f in Order._meta.concrete_fields if f.column not in ("id", "client_order_id", "status")]
        cursor.execute(f"INSERT INTO trading_order ({', '.join(columns)}, status) "
                       f"SELECT {', '.join(columns)}, 'cancelled' FROM trading_order, generate_series(1, %s) "
                       f"WHERE id = %s", [BUSY_ROWS, order.pk])
        cursor.execute("ANALYZE trading_command, trading_order, trading_fill")
    return busy


def test_the_engines_pending_read_is_planned_once(market, busy_market):
    account = AccountFactory()
    fund(account, USD="1000")
    order_submit(account=account, market=market.symbol, side="buy", type="limit", price="100.00",
                 quantity="0.0200", client_order_id="plan-1")
    runner = MarketRunner(market, "token")
    for _ in range(RUNS):
        assert len(runner._pending(500)) == 1
    generic, custom = plans_of("trading_command")
    assert custom == 0 and generic == RUNS - 5, (generic, custom)


def test_settlements_closing_read_is_planned_once(market, busy_market):
    for _ in range(RUNS):
        with transaction.atomic():
            assert settlement._closing_orders(market.pk) == []
    generic, custom = plans_of("close_settled")
    assert custom == 0 and generic == RUNS - 5, (generic, custom)



def test_the_fix_tails_read_is_planned_once_and_reads_one_index_range_per_account_and_market(market, busy_market):
    """The FIX reader's tail read (after every engine batch) runs a generic plan kept for the
    connection — parameters as ``$n``, not the values of the call — that probes the
    ``(account, market, id)`` index above each market's floor. auto_explain shows the plan of
    the function's query (a nested statement) as a notice to this client."""
    from trading.outbox.selectors import account_events_after

    account = AccountFactory()
    fund(account, USD="1000")
    order_submit(account=account, market=market.symbol, side="buy", type="limit", price="100.00",
                 quantity="0.0200", client_order_id="plan-1")
    floors = {market.pk: 0, busy_market.pk: 0}
    notices: list[str] = []
    connection.ensure_connection()
    raw = connection.connection

    def handler(diag):
        notices.append(diag.message_primary or "")

    raw.add_notice_handler(handler)
    with connection.cursor() as cursor:
        cursor.execute("LOAD 'auto_explain'")
        cursor.execute("SET auto_explain.log_min_duration = 0")
        cursor.execute("SET auto_explain.log_nested_statements = on")
        cursor.execute("SET auto_explain.log_level = notice")
    try:
        reads = [account_events_after([account.pk], floors, channels=("balances",)) for _ in range(RUNS)]
    finally:
        raw.remove_notice_handler(handler)
        with connection.cursor() as cursor:
            cursor.execute("SET auto_explain.log_min_duration = -1")
    # the submission's hold, each time (the deposit's event has no market)
    assert all([(e["market_id"], e["channel"]) for e in read] == [(market.pk, "balances")] for read in reads), reads[0]
    plans = [n for n in notices if "trading_outboxevent" in n]
    assert len(plans) == RUNS, notices[:3]
    for plan in plans:
        assert "outbox_account_market_id" in plan, plan
        assert "(account_id = a.account_id) AND (market_id = f.market_id) AND (id > f.floor)" in plan, plan
        assert "ANY ($4)" in plan, plan  # generic: the parameter, not this call's channels


# Recurring statements that PostgreSQL still plans on every run, and why that is left: each
# runs once per batch (not per order) and its planning is a few hundredths of a millisecond.
REPLANNED_BY_DESIGN = {
    # settlement's lock of a chunk's orders: `id = ANY($1)`, whose custom plan knows the count
    "FROM trading_order WHERE id = ANY(": "settlement: once per chunk",
    # the sealer's append of a batch's seals from arrays
    "INSERT INTO audit_auditseal": "audit sealer: once per batch",
}


def test_no_recurring_statement_of_the_order_path_is_planned_on_every_run(market, busy_market, runner):
    """The class of the defects above: submit, match, settle, read the FIX tail (one session's
    account, as the reader does) and seal, over and over on one connection, then ask
    PostgreSQL which prepared statements never got a generic plan: none but those named
    above. (With the tail read as the prepared join it replaced, this fails on it.)"""
    from trading.outbox.selectors import account_events_after

    buyer, seller = AccountFactory(), AccountFactory()
    fund(buyer, USD="100000")
    fund(seller, BTC="100")
    runs = RUNS + 2
    for i in range(runs):
        order_submit(account=buyer, market=market.symbol, side="buy", type="limit", price="100.00",
                     quantity="0.0100", client_order_id=f"b{i}")
        order_submit(account=seller, market=market.symbol, side="sell", type="limit", price="100.00",
                     quantity="0.0100", client_order_id=f"s{i}")
        runner.step()
        settlement.settlement_run(market.pk)
        account_events_after([buyer.pk], {market.pk: 0, busy_market.pk: 0})
    assert Order.objects.filter(market=market, status="filled").count() == 2 * runs
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        prepared = cursor.fetchall()
    assert len(prepared) >= 5, prepared  # the loop's statements were prepared at all
    replanned = [
        " ".join(statement.split())[:160] for statement, generic, custom in prepared
        if custom > 5 and not any(fragment in statement for fragment in REPLANNED_BY_DESIGN)
    ]
    assert replanned == []

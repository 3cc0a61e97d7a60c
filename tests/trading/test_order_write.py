"""The one-statement order write (``trading.services.order_write``, PostgreSQL) writes exactly
the rows of the general path, in one statement; what it cannot decide alone falls through
to the general path, which refuses precisely."""
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Balance, Journal, LedgerEntry
from audit.models import AuditEvent
from exchange import errors
from tests.factories import AccountFactory
from tests.support import fund
from trading.models import AccountSequence, Command, Market, Order, OutboxEvent
from trading.services import order_submit, order_write

pytestmark = pytest.mark.django_db(transaction=True)

IGNORED = {"id", "created_at", "updated_at", "order", "journal", "target_id", "reference", "sequence", "hash",
           "prev_hash", "seq", "sealed_at", "request_id", "payload"}


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement write is PostgreSQL's; SQLite takes the general path")


def _row(instance, ignored=IGNORED):
    return {f.name: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.name not in ignored}


def _submit(trader, **extra):
    order = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}
    return order_submit(account=trader, **(order | extra)).order


def _written(order):
    journal = Journal.objects.get(reference=f"order:{order.pk}")
    return {
        "order": _row(Order.objects.get(pk=order.pk)),
        "journal": _row(journal),
        "entries": sorted((_row(e) for e in LedgerEntry.objects.filter(journal=journal)), key=lambda r: r["bucket"]),
        "command": _row(Command.objects.get(order_id=order.pk)),
        "audit": _row(AuditEvent.objects.get(action="order.submitted", target_id=str(order.pk))),
    }


def test_the_one_statement_write_equals_the_general_path(market, monkeypatch):
    trader = AccountFactory()
    fund(trader, USD="1000")

    fast = _submit(trader, client_order_id="fast-1")
    fast_event = OutboxEvent.objects.filter(account=trader, channel="balances").order_by("-id").first()
    monkeypatch.setattr(order_write, "available", lambda: False)
    slow = _submit(trader, client_order_id="slow-1")
    slow_event = OutboxEvent.objects.filter(account=trader, channel="balances").order_by("-id").first()

    fast_rows, slow_rows = _written(fast), _written(slow)
    for rows in (fast_rows, slow_rows):  # the one parameter that differs
        rows["order"].pop("client_order_id")
        rows["audit"]["after"].pop("client_order_id")
    assert fast_rows == slow_rows
    audit = AuditEvent.objects.get(action="order.submitted", target_id=str(fast.pk))
    assert (audit.target_type, audit.account_id) == ("trading.order", trader.pk)
    assert audit.after["client_order_id"] == "fast-1"
    assert Journal.objects.get(reference=f"order:{fast.pk}").entries.count() == 2
    # the balances events: consecutive sequences on the account's stream, the same shape
    assert slow_event.sequence == fast_event.sequence + 1
    assert fast_event.payload == {"asset": "USD", "total": "1000.000000", "available": "949.900000",
                                  "locked": "50.100000"}
    assert slow_event.payload["available"] == "899.800000"
    assert AccountSequence.objects.get(account=trader, channel="balances").last == slow_event.sequence
    balance = Balance.objects.get(account=trader, asset_id="USD")
    assert (balance.available, balance.locked) == (D("899.8"), D("100.2"))


def test_one_statement_and_the_engine_wake_up(market, settings):
    settings.BOURSE_AUDIT_SEAL_MODE = "off"  # sealing runs after the request, not in it
    trader = AccountFactory()
    fund(trader, USD="1000")
    _submit(trader)  # warm: the key and market caches of the process do not matter here
    with CaptureQueriesContext(connection) as queries:
        order = _submit(trader)
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    # the write (the market comes from the process's cache and is checked in it); the wake-up
    # goes with the outbox announcement through Redis, else a NOTIFY statement after the write
    wake = [] if settings.REDIS_URL else ["SELECT"]
    assert statements == ["WITH", *wake], [q["sql"][:80] for q in queries.captured_queries]
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING


def test_what_it_cannot_decide_is_refused_by_the_general_path(market):
    trader = AccountFactory()
    fund(trader, USD="10")
    with pytest.raises(errors.InsufficientBalance) as refused:
        _submit(trader)
    assert refused.value.extra["needed"] == "50.100000"
    broke = AccountFactory()  # no USD balance row at all
    with pytest.raises(errors.InsufficientBalance):
        _submit(broke)
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
    fund(trader, USD="1000")
    with pytest.raises(errors.MarketHalted):
        _submit(trader)
    assert not Order.objects.exists() and not Command.objects.exists()
    assert not Journal.objects.filter(kind="hold").exists()


@pytest.mark.parametrize("extra", [
    {},
    {"client_order_id": "cached-1"},
    {"type": "stop_limit", "stop_price": "90.00"},
    {"time_in_force": "gtd", "expire_time": "2099-01-01T00:00:00Z"},
])
def test_the_statement_stays_within_psycopgs_parse_cache(market, monkeypatch, settings, extra):
    """psycopg parses a statement once and keeps it only under 4 KB and 50 parameters; above
    either it re-parsed this one on every order (a tenth of a REST process's CPU)."""
    import psycopg
    from psycopg import _queries

    settings.BOURSE_GTD_MAX_DAYS = 365 * 100
    trader = AccountFactory()
    fund(trader, USD="1000")
    seen = []
    real = psycopg.Cursor.execute

    def execute(cursor, query, params=None, **kwargs):
        if str(query).startswith("WITH") and "trading_order" in str(query):  # the order's (not the audit seal's)
            seen.append((len(query), len(params)))
        return real(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    _submit(trader, **extra)
    assert len(seen) == 1
    length, count = seen[0]
    assert length <= _queries.MAX_CACHED_STATEMENT_LENGTH and count <= _queries.MAX_CACHED_STATEMENT_PARAMS, seen


def test_a_repeated_client_order_id_is_refused_by_the_constraint_and_answered_with_the_first(market):
    """No look-up before the write: the statement's INSERT meets the unique constraint, writes
    nothing (the hold included), and the earlier order is the answer."""
    trader = AccountFactory()
    fund(trader, USD="1000")
    first = _submit(trader, client_order_id="again")
    with CaptureQueriesContext(connection) as queries:
        again = order_submit(account=trader, market="BTC-USD", side="buy", type="limit", price="100.00",
                             quantity="0.5000", client_order_id="again")
    assert not again.created and again.order.pk == first.pk
    assert [q["sql"].split()[0].upper() for q in queries.captured_queries] == ["WITH", "SELECT"]
    balance = Balance.objects.get(account=trader, asset_id="USD")
    assert (balance.available, balance.locked) == (D("949.900000"), D("50.100000"))  # held once
    with pytest.raises(errors.DuplicateClientOrderId):
        _submit(trader, client_order_id="again", price="100.01")
    assert Order.objects.count() == 1


@pytest.mark.parametrize("source_ip", ["203.0.113.9", "2001:db8::7", None])
def test_the_audit_event_from_one_json_record_equals_the_general_paths(market, monkeypatch, source_ip):
    """The audit row goes in as one JSON record read back by ``jsonb_populate_record``: the
    actor, the source address (v4, v6, none), the request id and the parameters land as the
    general path writes them."""
    from exchange.context import Actor, actor_var, request_id_var, source_ip_var

    trader = AccountFactory()
    fund(trader, USD="1000")
    tokens = (source_ip_var.set(source_ip), request_id_var.set("req-7f3a"),
              actor_var.set(Actor("apikey", "bk_test", "test key \u00e9\"'")))
    try:
        fast = _submit(trader, client_order_id="audit-fast")
        monkeypatch.setattr(order_write, "available", lambda: False)
        slow = _submit(trader, client_order_id="audit-slow")
    finally:
        for var, token in zip((source_ip_var, request_id_var, actor_var), tokens, strict=True):
            var.reset(token)
    keep = IGNORED - {"request_id"}
    fast_row, slow_row = (_row(AuditEvent.objects.get(action="order.submitted", target_id=str(order.pk)), keep)
                          for order in (fast, slow))
    for row in (fast_row, slow_row):
        row["after"].pop("client_order_id")
    assert fast_row == slow_row
    assert (fast_row["source_ip"], fast_row["request_id"], fast_row["actor_label"]) == (
        source_ip, "req-7f3a", "test key \u00e9\"'")
    assert fast_row["before"] is None


def test_the_statement_is_made_once_and_only_its_values_change(market, monkeypatch, settings):
    """The text is the same for every order (limit, market, stop, GTD, with and without a
    client order id): made once per process, only the parameters are worked out per order."""
    import psycopg

    settings.BOURSE_GTD_MAX_DAYS = 365 * 100
    trader = AccountFactory()
    fund(trader, USD="100000", BTC="10")
    texts = set()
    real = psycopg.Cursor.execute

    def execute(cursor, query, params=None, **kwargs):
        if str(query).startswith("WITH") and "trading_order" in str(query):  # the order's (not the audit seal's)
            texts.add(query)
        return real(cursor, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    built = []
    real_build = order_write._Statement.__init__

    def counting_build(statement):
        built.append(statement)
        real_build(statement)

    monkeypatch.setattr(order_write, "_statement", None)
    monkeypatch.setattr(order_write._Statement, "__init__", counting_build)
    _submit(trader)
    _submit(trader, client_order_id="once-1", price="99.99", quantity="0.2500")
    _submit(trader, side="sell", quantity="0.1000", price="120.00")
    _submit(trader, type="market", price=None, quote_quantity="10.00")
    _submit(trader, type="stop_limit", stop_price="90.00")
    _submit(trader, time_in_force="gtd", expire_time="2099-01-01T00:00:00Z")
    assert Order.objects.filter(account=trader).count() == 6
    assert len(built) == 1 and len(texts) == 1


def test_a_column_whose_default_is_computed_gets_it_per_order(market, monkeypatch):
    """A field whose default is a callable (say, one added later) is worked out per order,
    not frozen into the statement."""
    reason = Command._meta.get_field("reason")
    counter = iter(range(1, 100))
    computed = lambda: f"r{next(counter)}"  # noqa: E731
    monkeypatch.setattr(reason, "default", computed)
    monkeypatch.setattr(reason, "_get_default", computed, raising=False)  # Django caches the default's getter
    monkeypatch.setattr(order_write, "_statement", None)
    trader = AccountFactory()
    fund(trader, USD="1000")
    first, second = _submit(trader), _submit(trader)
    assert [Command.objects.get(order_id=order.pk).reason for order in (first, second)] == ["r1", "r2"]

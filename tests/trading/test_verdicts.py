"""Waiting for the engine's verdict: on the signal, not by polling; a cancel that loses the
race to a fill answers order_closed; a write that committed is never answered with an error,
and a dependency that is down is a 503 to retry, never a 500."""
import threading
import time

import pytest
from django.db import OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext

from exchange import errors
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Command, Order
from trading.services import order_cancel, order_cancel_all, order_submit, order_wait, orders

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return account


@pytest.fixture
def bob(market):
    account = AccountFactory(name="bob")
    fund(account, USD="10000", BTC="10")
    return account


def limit(account, side, price="100.00", quantity="1.0000", **extra):
    return order_submit(account=account, market="BTC-USD", side=side, type="limit", price=price,
                        quantity=quantity, **extra).order


def in_thread(target):
    result = {}

    def run():
        try:
            result["value"] = target()
        except BaseException as exc:
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


# --- 4. a cancel racing a fill ---------------------------------------------------------------


def test_cancel_losing_to_a_fill_in_an_earlier_batch_answers_order_closed(runner, alice, bob):
    resting = limit(alice, "sell")
    runner.step()
    limit(bob, "buy")  # will fill `resting`; its command is queued before the cancel's
    waiting, outcome = in_thread(lambda: order_cancel(account=alice, order_id=resting.pk, wait=5))
    deadline = time.monotonic() + 5
    while not Command.objects.filter(order=resting, kind=Command.Kind.CANCEL).exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    runner.step(limit=1)  # the batch with the fill, not yet the cancel
    waiting.join(5)
    # before: (order filled, answered=False) -> REST 202 with status "filled"
    assert isinstance(outcome.get("error"), errors.OrderClosed), outcome
    resting.refresh_from_db()
    assert resting.status == Order.Status.FILLED


# --- 6. no polling on the hot path -----------------------------------------------------------


def test_waiting_without_a_verdict_does_not_poll_the_database(runner, alice):
    order = limit(alice, "buy")  # nobody steps the engine: no verdict comes
    with CaptureQueriesContext(connection) as queries:
        order_wait(order, 0.6)
    assert len(reads_of("trading_order", queries)) <= 2  # before: a re-read every 50 ms (12 in 0.6 s)

    limit(alice, "buy", price="99.00")
    with CaptureQueriesContext(connection) as queries:
        order_cancel_all(account=alice, wait=0.6)
    assert len(reads_of("trading_command", queries)) <= 3  # before: a read every 10 ms (~60)


def reads_of(table, queries):
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith("SELECT") and f'FROM "{table}"' in q["sql"]]


def test_the_verdict_signal_wakes_a_waiter_at_once(runner, alice, monkeypatch):
    # The safety re-check (1 s) is stretched past the waits: only the signal can wake a waiter
    # in time, however slow the machine (a bound on the wake-up time alone flaked under load).
    monkeypatch.setattr(orders, "VERDICT_RECHECK_S", 60.0)
    order = limit(alice, "buy")
    waiting, outcome = in_thread(lambda: (order_wait(Order.objects.get(pk=order.pk), 30), time.monotonic()))
    time.sleep(0.3)  # the waiter is asleep on its signal
    runner.step()
    stepped = time.monotonic()
    waiting.join(30)
    woken_order, woken_at = outcome["value"]
    assert woken_order.status == Order.Status.OPEN
    assert woken_at - stepped < 20  # the signal: neither the re-check (60 s) nor the end of the wait

    other = limit(alice, "buy", price="99.00")
    runner.step()
    waiting, outcome = in_thread(lambda: (order_cancel_all(account=alice, wait=30), time.monotonic()))
    deadline = time.monotonic() + 10
    while Command.objects.filter(kind=Command.Kind.CANCEL, processed=False).count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    runner.step()
    stepped = time.monotonic()
    waiting.join(30)
    cancelled, woken_at = outcome["value"]
    assert sorted(cancelled) == sorted([order.pk, other.pk])
    assert woken_at - stepped < 20


# --- 9. committed writes are never answered with an error; outages are 503 ---------------------


@pytest.fixture
def database_fails_while_waiting(monkeypatch):
    """The database goes away after the write committed, while the caller waits."""

    def refresh(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Order, "refresh_from_db", refresh)


@pytest.fixture
def client_for(settings):
    settings.BOURSE_ENGINE_WAIT_S = 2

    def make(account):
        return SignedClient(ApiKeyFactory(account=account), raise_request_exception=False)

    return make


def test_an_order_committed_before_the_database_failed_is_answered_202(runner, alice, client_for,
                                                                       database_fails_while_waiting):
    client = client_for(alice)
    response = client.post("/api/v1/orders", json={"market": "BTC-USD", "side": "buy", "type": "limit",
                                                   "price": "100.00", "quantity": "1.0000"})
    assert response.status_code == 202, response.content  # before: 500
    body = response.json()
    assert body["status"] == "pending"
    assert Order.objects.filter(pk=body["order_id"]).exists()


def test_a_cancel_committed_before_the_database_failed_is_answered_202(runner, alice, client_for, monkeypatch):
    client = client_for(alice)
    order = limit(alice, "buy")
    runner.step()
    monkeypatch.setattr(Order, "refresh_from_db", lambda self, *a, **k: (_ for _ in ()).throw(
        OperationalError("the database system is shutting down")))
    response = client.request("DELETE", f"/api/v1/orders/{order.pk}")
    assert response.status_code == 202, response.content
    assert response.json()["order_id"] == str(order.pk)
    assert Command.objects.filter(order=order, kind=Command.Kind.CANCEL).exists()

    second = limit(alice, "buy", price="99.00")
    from trading import notify

    monkeypatch.setattr(notify.VerdictWaiter, "get", classmethod(lambda cls: (_ for _ in ()).throw(
        OperationalError("the database system is shutting down"))))
    response = client.request("DELETE", "/api/v1/orders", query="market=BTC-USD")  # cancel-all's wait fails
    assert response.status_code == 200, response.content  # the cancels were queued: their ids
    assert str(second.pk) in response.json()["cancelled"] or second.pk in response.json()["cancelled"]


def test_a_database_outage_at_authentication_is_503_with_retry_after(alice, client_for, monkeypatch):
    from apikeys import verifier

    class Unreachable:
        @staticmethod
        def select_related(*args, **kwargs):
            raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')

    client = client_for(alice)
    monkeypatch.setattr(verifier.ApiKey, "objects", Unreachable)
    response = client.get("/api/v1/balances")
    assert response.status_code == 503, response.content  # before: 500
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "service_unavailable"


def test_a_database_outage_is_service_unavailable_on_the_websocket_too(market, monkeypatch):
    from apikeys import verifier
    from tests.ws.helpers import auth_op, connected, scenario

    key = ApiKeyFactory(account=AccountFactory())

    class Unreachable:
        @staticmethod
        def select_related(*args, **kwargs):
            raise OperationalError("the database system is starting up")

    monkeypatch.setattr(verifier.ApiKey, "objects", Unreachable)

    @scenario
    async def run():
        async with connected() as ws:
            reply = await ws.ask(auth_op(key, message_id="a1"))
            assert reply["type"] == "error" and reply["code"] == "service_unavailable", reply  # before: internal_error

    run()

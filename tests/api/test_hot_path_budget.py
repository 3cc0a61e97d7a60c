"""The hot path's cost, pinned: how many SQL statements and shared-store (Redis) round trips a
signed order placement, a cancel and a signed read take in steady state (key cached, market
known). A change that adds one fails here with the statements listed, so the order path
cannot grow a query or a round trip unnoticed (bench/order_path.md has the budget's story).

Counts are per configuration: PostgreSQL + Redis (production) and SQLite embedded (no Redis;
the shared cache is SQLite too, on its own connection, so only the database's statements
are counted there). The engine is not running: the views answer 202 without waiting
(``BOURSE_ENGINE_WAIT_S=0``), so what is counted is the request's own work.
"""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund

# Not inside a test transaction: the one-statement order write runs only in autocommit.
pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.0100"}

# (statements, Redis round trips) per configuration:
# - place: the one-statement write (trading/services/order_write.py; the market comes from the
#   process's cache, trading/services/marketcache.py, and is checked inside it) and nothing
#   else; Redis: the authentication script (apikeys/gate.py: failure budget, nonce, replay
#   epoch, key and orders budgets), then the outbox announcement and the engine's wake-up in
#   one pipeline (trading/outbox/signal.py). SQLite writes through the general path inside one
#   transaction (BEGIN IMMEDIATE … COMMIT).
# - cancel: the order (with its market and assets), the command and audit rows in one
#   transaction; Redis: the authentication script, the engine's wake-up.
# - read (GET /account): the account row; Redis: the authentication script.
BUDGET = {
    "postgresql": {"place": (1, 2), "cancel": (5, 2), "read": (1, 1)},
    "sqlite": {"place": (13, 0), "cancel": (5, 0), "read": (1, 0)},
}


@pytest.fixture(autouse=True)
def steady(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0
    settings.BOURSE_KEY_CACHE_S = 3600  # steady state: a loaded test machine must not expire the key between requests
    # Sealing the audit chain is not the request's work in production (a thread after commit,
    # coalesced per process, or beat); the suite seals inline, which would be counted here.
    settings.BOURSE_AUDIT_SEAL_MODE = "off"


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


class RedisRoundTrips:
    """Counts requests written to Redis (a script or a pipeline is one)."""

    def __init__(self, monkeypatch):
        self.count = 0
        try:
            from redis.connection import AbstractConnection as base
        except ImportError:  # pragma: no cover - older redis-py
            from redis.connection import Connection as base
        original = base.send_packed_command

        def counting(conn, command, check_health=True):
            self.count += 1
            return original(conn, command, check_health)

        monkeypatch.setattr(base, "send_packed_command", counting)
        # Each round trip on the thread's own connection (exchange/redisdirect.py), none through
        # redis-py's client and its pool (~2.5x the CPU per command).
        self.checkouts = 0
        pool = __import__("redis").ConnectionPool
        checkout = pool.get_connection

        def counted_checkout(*args, **kwargs):
            self.checkouts += 1
            return checkout(*args, **kwargs)

        monkeypatch.setattr(pool, "get_connection", counted_checkout)


def _measure(monkeypatch, action):
    trips = RedisRoundTrips(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        response = action()
    assert trips.checkouts == 0, f"{trips.checkouts} Redis commands through the client's pool"
    return response, [q["sql"] for q in queries.captured_queries], trips.count


def _check(what, statements, trips):
    expected_statements, expected_trips = BUDGET[connection.vendor][what]
    listing = "\n".join(f"  {i + 1}. {sql[:160]}" for i, sql in enumerate(statements))
    assert len(statements) == expected_statements, f"{what}: {len(statements)} statements\n{listing}"
    assert trips == expected_trips, f"{what}: {trips} Redis round trips"


def test_a_placement_is_one_write_and_one_store_round_trip(alice, runner, monkeypatch):
    alice.post("/api/v1/orders", json=LIMIT)  # warm: key cached, market read
    response, statements, trips = _measure(monkeypatch, lambda: alice.post("/api/v1/orders", json=LIMIT))
    assert response.status_code == 202, response.content
    _check("place", statements, trips)


def test_a_cancel(alice, runner, monkeypatch):
    first = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    second = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    alice.request("DELETE", f"/api/v1/orders/{first}")  # warm
    response, statements, trips = _measure(monkeypatch, lambda: alice.request("DELETE", f"/api/v1/orders/{second}"))
    assert response.status_code == 202, response.content
    _check("cancel", statements, trips)


def test_a_signed_read(alice, monkeypatch):
    alice.get("/api/v1/account")  # warm
    response, statements, trips = _measure(monkeypatch, lambda: alice.get("/api/v1/account"))
    assert response.status_code == 200, response.content
    _check("read", statements, trips)

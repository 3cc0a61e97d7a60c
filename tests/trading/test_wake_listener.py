"""The engine's wake-up over Redis (trading/notify.py): a placement's wake-up travels in the
same round trip as its outbox announcement; the engine's listener never raises or stalls when
Redis is away, and after it has subscribed again it reports every market woken (a wake-up
published while nobody listened is lost, so everything is read once)."""
import socket
import time

import pytest
import redis
from django.conf import settings

from tests.factories import AccountFactory
from tests.support import fund
from trading import notify
from trading.services import order_submit

pytestmark = [pytest.mark.skipif(not settings.REDIS_URL, reason="the wake-up over Redis"),
              pytest.mark.django_db(transaction=True)]


def _dead_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def test_a_placement_wakes_its_market_in_the_announcements_round_trip(market, monkeypatch):
    listener = notify.WakeListener([market.pk, market.pk + 1000])
    try:
        import redis.connection

        writes = []
        original = redis.connection.AbstractConnection.send_packed_command
        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command",
                            lambda self, command, check_health=True: writes.append(command)
                            or original(self, command, check_health))
        account = AccountFactory()
        fund(account, USD="1000")
        order_submit(account=account, market="BTC-USD", side="buy", type="limit", price="100.00",
                     quantity="0.0100", client_order_id="wake-1")
        sent = [b"".join(w) if isinstance(w, list) else w for w in writes]
        assert [w.count(b"PUBLISH") for w in sent if b"PUBLISH" in w] == [2]  # one write: announcement and wake-up
        deadline = time.monotonic() + 5
        woken: set[int] = set()
        while not woken and time.monotonic() < deadline:
            woken = listener.wait(0.5)
        assert woken == {market.pk}
    finally:
        listener.close()


def test_only_the_listeners_markets(market):
    listener = notify.WakeListener([market.pk])
    try:
        notify._redis_wake(market.pk + 1000)
        assert listener.wait(0.3) == set()
        notify._redis_wake(market.pk)
        assert listener.wait(2.0) == {market.pk}
    finally:
        listener.close()


def test_redis_away_at_start_then_back(market, settings, monkeypatch):
    monkeypatch.setattr(notify, "WAKE_RESUBSCRIBE_S", 0.2)
    good = settings.REDIS_URL
    settings.REDIS_URL = _dead_url()
    listener = notify.WakeListener([market.pk])  # does not raise
    try:
        started = time.monotonic()
        assert listener.wait(0.05) == set()
        assert listener.wait(0) == set()
        assert time.monotonic() - started < 1.0  # no retries with back-off inside redis-py
        settings.REDIS_URL = good
        time.sleep(0.25)
        assert listener.wait(0) == {market.pk}  # subscribed again: every market read once
        notify._redis_wake(market.pk)
        assert listener.wait(2.0) == {market.pk}
    finally:
        listener.close()


def test_a_dropped_subscription_is_taken_again(market, monkeypatch):
    monkeypatch.setattr(notify, "WAKE_RESUBSCRIBE_S", 0.2)
    listener = notify.WakeListener([market.pk])
    try:
        assert listener.wait(0) == set()
        host, port = listener._redis._pubsub.connection._sock.getsockname()[:2]
        client = redis.Redis.from_url(settings.REDIS_URL)
        assert client.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1  # what a Redis restart does to it
        client.close()
        assert listener.wait(0.5) == set()  # the broken connection noticed, not raised
        time.sleep(0.25)
        assert listener.wait(0) == {market.pk}
        notify._redis_wake(market.pk)
        assert listener.wait(2.0) == {market.pk}
    finally:
        listener.close()

"""A refused request can never come back (issue 13, item 3): a request whose signature
verified but that was refused burns its nonce, so a replay with a longer ``X-API-Window`` is
refused; and the replay guard survives the loss of its store (a Redis restart without
persistence): requests signed before the store came back are refused."""
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from urllib.error import HTTPError

import pytest
from django.core.cache import cache

from apikeys import replay, signing
from apikeys.services import apikey_update
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient, fresh_nonce
from tests.support import daphne_server, free_port, fund
from trading.models import Order

ACCOUNT = "/api/v1/account"


def code(response) -> str:
    return response.json()["code"]


@pytest.mark.django_db
def test_a_request_refused_for_its_timestamp_cannot_be_replayed_with_a_longer_window(trader):
    key = ApiKeyFactory(account=trader)
    signed = SignedClient(key)
    headers = signed.headers("GET", ACCOUNT, timestamp=int(time.time() * 1000) - 10_000)  # default window 5 s
    assert code(signed.client.get(ACCOUNT, headers=headers)) == "timestamp_out_of_window"
    replayed = signed.client.get(ACCOUNT, headers={**headers, "X-API-Window": "60000"})
    assert code(replayed) == "nonce_reused"
    # a request signed afresh with that window is fine
    assert signed.get(ACCOUNT, timestamp=int(time.time() * 1000) - 10_000, window=60_000).status_code == 200


@pytest.mark.django_db
def test_a_request_refused_for_its_scope_cannot_come_back_once_the_scope_is_granted(market, trader):
    key = ApiKeyFactory(account=trader, scopes=["read"])
    signed = SignedClient(key)
    body = json.dumps({"market": market.symbol, "side": "buy", "type": "limit", "price": "1", "quantity": "1"}).encode()
    headers = signed.headers("POST", "/api/v1/orders", body=body)
    first = signed.client.post("/api/v1/orders", data=body, content_type="application/json", headers=headers)
    assert code(first) == "permission_denied" and first.json()["required_scope"] == "trade"
    apikey_update(key=key, scopes=["read", "trade"])
    again = signed.client.post("/api/v1/orders", data=body, content_type="application/json", headers=headers)
    assert code(again) == "nonce_reused"
    assert not Order.objects.filter(account=trader).exists()


def test_a_future_timestamp_keeps_its_nonce_until_it_could_be_accepted(monkeypatch):
    timeouts = []

    class Spy:
        def add(self, key, value, timeout):
            timeouts.append(timeout)
            return True

    monkeypatch.setattr(replay, "cache", Spy())
    now_ms = 1_800_000_000_000
    replay.nonce_claim("bk_a", "n" * 16, timestamp_ms=now_ms - 10_000, now_ms=now_ms)
    replay.nonce_claim("bk_a", "m" * 16, timestamp_ms=now_ms + 120_000, now_ms=now_ms)
    replay.nonce_claim("bk_a", "o" * 16, timestamp_ms=now_ms + 10**12, now_ms=now_ms)
    assert timeouts == [62.0, 182.0, 86_400]


@pytest.mark.django_db
def test_after_the_store_loses_its_memory_requests_signed_before_are_refused(trader):
    key = ApiKeyFactory(account=trader)
    signed = SignedClient(key)
    headers = signed.headers("GET", ACCOUNT)
    assert signed.client.get(ACCOUNT, headers=headers).status_code == 200
    time.sleep(0.01)
    cache.clear()  # what a Redis restart without persistence does
    replayed = signed.client.get(ACCOUNT, headers=headers)
    assert replayed.status_code == 401 and code(replayed) == "replay_guard_reset"
    assert signed.get(ACCOUNT).status_code == 200  # signed after the store came back


# --- live: daphne on a Redis of its own, restarted without persistence -----------------



class PrivateRedis:
    """A redis-server of this test's own (nothing persisted), so it can be restarted."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def daphne_on(redis_url: str):
    with daphne_server(REDIS_URL=redis_url) as server:
        yield server.http


def _signed(key, method, path, body):
    return signing.signed_headers(key_id=key.key_id, timestamp=int(time.time() * 1000), nonce=fresh_nonce(),
                                  method=method, path=path, query="", body=body,
                                  secret=key.secret, private_key=None, window=60_000)


def _post(base, path, body, headers):
    request = urllib.request.Request(base + path, data=body, method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_restarting_redis_does_not_let_the_same_signed_bytes_place_a_second_order(market):
    key = ApiKeyFactory(scopes=["read", "trade"])
    fund(key.account, USD="1000", BTC="1")
    body = json.dumps({"market": market.symbol, "side": "buy", "type": "limit", "price": "1.00",
                       "quantity": "1"}).encode()
    redis = PrivateRedis()
    redis.start()
    try:
        with daphne_on(f"redis://127.0.0.1:{redis.port}/0") as base:
            # A store without an epoch cannot vouch for anything signed before it starts one:
            # the first request into a new (or restarted) Redis is refused once.
            warm_up = _signed(key, "POST", "/api/v1/orders", body)
            assert _post(base, "/api/v1/orders", body, warm_up)[1]["code"] == "replay_guard_reset"
            headers = _signed(key, "POST", "/api/v1/orders", body)
            status, first = _post(base, "/api/v1/orders", body, headers)
            assert status in (201, 202), first
            # Refused for its timestamp (default 5 s window), then replayed with a longer one.
            stale = signing.signed_headers(key_id=key.key_id, timestamp=int(time.time() * 1000) - 10_000,
                                           nonce=fresh_nonce(), method="POST", path="/api/v1/orders", query="",
                                           body=body, secret=key.secret, private_key=None)
            assert _post(base, "/api/v1/orders", body, stale)[1]["code"] == "timestamp_out_of_window"
            status, replayed = _post(base, "/api/v1/orders", body, {**stale, "X-API-Window": "60000"})
            assert (status, replayed["code"]) == (401, "nonce_reused")
            redis.stop()  # the whole replay memory is gone
            redis.start()
            status, replayed = _post(base, "/api/v1/orders", body, headers)
            assert (status, replayed["code"]) == (401, "replay_guard_reset"), replayed
    finally:
        redis.stop()
    assert Order.objects.filter(account=key.account).count() == 1

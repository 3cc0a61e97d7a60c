"""Live sessions follow their key (issue 13, item 1), against the real servers: daphne for the
WebSocket and the FIX gateway process, with the change made in this process through the
services (or the owner's Active flag), and the key-state event crossing processes (unix
datagram embedded, Redis pub/sub with REDIS_URL).

For each way a key stops being usable — revoked, expired, the scope the session needs
removed, the allowlist no longer containing the session's address, the owner deactivated —
the open session is ended within a second with the documented code, and nothing is accepted
or delivered after it."""
import json
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from apikeys.services import apikey_revoke, apikey_update
from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.fix.support import Processes, RawClient, new_order
from tests.signed import SignedClient
from tests.support import fund
from tests.ws.helpers import auth_op
from tests.ws.test_live_server import daphne, recv
from trading.services.orders import order_submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BOUND_S = 1.0


def _revoke(key):
    apikey_revoke(key=key)


def _descope_ws(key):
    apikey_update(key=key, scopes=["trade"])


def _descope_fix(key):
    apikey_update(key=key, scopes=["read"])


def _allowlist(key):
    apikey_update(key=key, ip_allowlist=["10.0.0.0/8"])


def _deactivate(key):
    owner = key.account.owner
    owner.is_active = False
    owner.save()


WS_CASES = [  # (name, change, expected code, close code)
    ("revoked", _revoke, "key_revoked", 4401),
    ("descoped", _descope_ws, "permission_denied", 4403),
    ("allowlist", _allowlist, "ip_not_allowed", 4403),
    ("deactivated", _deactivate, "owner_deactivated", 4403),
]
FIX_CASES = [
    ("revoked", _revoke, "key_revoked"),
    ("descoped", _descope_fix, "permission_denied"),
    ("allowlist", _allowlist, "ip_not_allowed"),
    ("deactivated", _deactivate, "owner_deactivated"),
]


@pytest.fixture
def market():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    return MarketFactory(base=btc, quote=usd)


def _funded_key(**kwargs):
    key = ApiKeyFactory(**kwargs)
    fund(key.account, USD="100000", BTC="100")
    return key


@contextmanager
def _ws_session(url, key):
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps(auth_op(key, message_id="a")))
        assert recv(ws)["type"] == "auth"
        ws.send(json.dumps({"op": "subscribe", "id": "s", "channels": ["orders", "balances"]}))
        assert recv(ws)["type"] == "subscribed"
        yield ws


def _ws_ended(ws, started: float):
    """The error frame and the close, and how long after ``started`` the close came."""
    frames = []
    try:
        while True:
            frames.append(recv(ws, timeout=5))
    except ConnectionClosed:
        pass
    elapsed = time.monotonic() - started
    return frames, ws.close_code, ws.close_reason, elapsed


def test_websocket_connections_end_within_a_second_when_their_key_may_no_longer_be_used(market):
    with daphne() as url:
        for name, change, code, close_code in WS_CASES:
            key = _funded_key()
            with _ws_session(url, key) as ws:
                started = time.monotonic()
                change(key)
                frames, got_code, reason, elapsed = _ws_ended(ws, started)
            errors = [f for f in frames if f.get("type") == "error"]
            assert [e["code"] for e in errors] == [code], (name, frames)
            assert (got_code, reason) == (close_code, code), name
            assert elapsed < BOUND_S, f"{name}: closed after {elapsed:.2f} s"
            # Nothing is delivered after it: a private event of the account finds no socket,
            # and the close came before any.
            order_submit(account=key.account, market=market.symbol, side="buy", type="limit",
                         price=Decimal("1.00"), quantity=Decimal("1"))
            assert all(f.get("channel") not in ("orders", "balances") for f in frames), (name, frames)


def test_websocket_connection_ends_when_its_key_expires(market):
    with daphne() as url:
        key = _funded_key(expires_at=timezone.now() + timedelta(seconds=2))
        with _ws_session(url, key) as ws:
            frames, got_code, reason, _ = _ws_ended(ws, time.monotonic())
            ended_at = timezone.now()
        assert [f["code"] for f in frames if f.get("type") == "error"] == ["key_expired"]
        assert (got_code, reason) == (4401, "key_expired")
        assert key.expires_at <= ended_at < key.expires_at + timedelta(seconds=BOUND_S)


def test_unrelated_changes_leave_the_session_open(market):
    """A label change or a scope the session does not use: the connection stays."""
    with daphne() as url:
        key = _funded_key()
        with _ws_session(url, key) as ws:
            apikey_update(key=key, label="renamed")
            apikey_update(key=key, scopes=["read"])  # the WebSocket needs only read
            time.sleep(0.5)
            ws.send(json.dumps({"op": "ping", "id": 1}))
            assert recv(ws) == {"type": "pong", "id": 1}


@pytest.fixture
def gateway(market):
    processes = Processes()
    clients = []

    def client(key):
        raw = RawClient(processes.port, key)
        clients.append(raw)
        return raw

    yield client
    for raw in clients:
        raw.close()
    print(processes.stop())


def _fix_ended(raw, started):
    logout = raw.expect("5", timeout=5)
    elapsed = time.monotonic() - started
    return logout.get(58), elapsed


def test_fix_sessions_are_logged_out_within_a_second_when_their_key_may_no_longer_be_used(gateway):
    for name, change, code in FIX_CASES:
        key = _funded_key()
        raw = gateway(key)
        raw.logon()
        raw.expect("A")
        started = time.monotonic()
        change(key)
        text, elapsed = _fix_ended(raw, started)
        assert text.startswith(f"{code}: "), (name, text)
        assert elapsed < BOUND_S, f"{name}: Logout after {elapsed:.2f} s"
        # Nothing accepted after it: the connection is closed and no order was created.
        try:
            raw.send("D", new_order("after-logout"))
        except OSError:
            pass
        assert raw.wait_closed(), name
        assert not key.account.orders.exists(), name


def test_fix_session_is_logged_out_when_its_key_expires(gateway):
    key = _funded_key(expires_at=timezone.now() + timedelta(seconds=2))
    raw = gateway(key)
    raw.logon()
    raw.expect("A")
    text, _ = _fix_ended(raw, time.monotonic())
    ended_at = timezone.now()
    assert text.startswith("key_expired: ")
    assert key.expires_at <= ended_at < key.expires_at + timedelta(seconds=BOUND_S)


def test_a_deactivated_owner_is_refused_on_rest_and_accepted_again_once_reactivated(market):
    key = _funded_key()
    client = SignedClient(key)
    assert client.get("/api/v1/balances").status_code == 200
    owner = key.account.owner
    owner.is_active = False
    owner.save()
    response = client.get("/api/v1/balances")
    assert response.status_code == 403 and response.json()["code"] == "owner_deactivated"
    owner.is_active = True
    owner.save()
    assert client.get("/api/v1/balances").status_code == 200

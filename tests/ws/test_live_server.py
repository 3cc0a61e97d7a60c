"""A real socket: daphne serving ``exchange.asgi:application`` in its own process, the
``websockets`` client on the other end, the engine's commit in this process. The commit
signal crosses processes (unix datagram embedded, Redis pub/sub with REDIS_URL)."""
import json
from contextlib import contextmanager
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from tests.factories import AccountFactory, ApiKeyFactory
from tests.support import daphne_server, fund
from tests.ws.helpers import auth_op, checked_frame
from trading.services.orders import order_submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@contextmanager
def daphne():
    """A real daphne; yields its WebSocket URL (other live tests import this)."""
    with daphne_server() as server:
        yield server.ws


def recv(ws, timeout=10.0) -> dict:
    return checked_frame(ws.recv(timeout=timeout))


def test_websockets_client_against_daphne(market, runner):
    key = ApiKeyFactory()
    fund(key.account, USD="10000", BTC="10")
    other = AccountFactory()
    fund(other, USD="10000", BTC="10")
    with daphne() as url, connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"op": "ping", "id": 1}))
        assert recv(ws) == {"type": "pong", "id": 1}
        ws.send("{oops")
        assert recv(ws)["code"] == "invalid_message"
        ws.send(json.dumps(auth_op(key, message_id="a")))
        assert recv(ws)["type"] == "auth"
        ws.send(json.dumps({"op": "subscribe", "id": "s", "channels": [f"book:{market.symbol}", "orders"]}))
        assert recv(ws)["type"] == "subscribed"
        snapshot = recv(ws)
        assert snapshot["type"] == "snapshot"
        order_submit(account=key.account, market=market.symbol, side="buy", type="limit",
                     price=Decimal("99.00"), quantity=Decimal("0.5"))
        order_submit(account=other, market=market.symbol, side="sell", type="limit",
                     price=Decimal("101.00"), quantity=Decimal("0.5"))
        runner.step()
        frames = [recv(ws) for _ in range(3)]
        updates = [f for f in frames if f["type"] == "update"]  # one per command that changed levels
        assert [u["sequence"] for u in updates] == [snapshot["sequence"] + 1, snapshot["sequence"] + 2]
        assert updates[0]["bids"] == [["99.000000", "0.50000000"]] and updates[1]["asks"] == [["101.000000", "0.50000000"]]
        order = next(f for f in frames if f["channel"] == "orders")
        assert order["sequence"] == 1 and order["data"]["status"] == "open"

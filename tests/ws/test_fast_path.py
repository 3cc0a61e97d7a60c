"""The fan-out's fast path (pre-rendered frames written straight to daphne's sockets) reads
private attributes of daphne, autobahn and Twisted. A dependency upgrade that changes them
would make it fall back to the slow path silently; this test, against a real daphne, fails
then: the process must report both parts of the fast path active once a frame went out."""
import json
import time
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from tests.factories import AccountFactory
from tests.support import daphne_server, fund
from tests.ws.test_live_server import recv
from trading.services.orders import order_submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_daphne_uses_the_fast_path(market, runner):
    trader = AccountFactory()
    fund(trader, USD="10000")
    with daphne_server(LOG_LEVEL="INFO") as server:
        with connect(server.ws, open_timeout=10) as ws:
            ws.send(json.dumps({"op": "subscribe", "channels": [f"book:{market.symbol}"]}))
            assert recv(ws)["type"] == "subscribed"
            sequence = recv(ws)["sequence"]
            order_submit(account=trader, market=market.symbol, side="buy", type="limit",
                         price=Decimal("99.00"), quantity=Decimal("0.5"))
            runner.step()
            update = recv(ws)
            assert (update["type"], update["sequence"]) == ("update", sequence + 1)
        time.sleep(0.5)  # the log lines of the write path are flushed as they are written
        log = server.log()
    assert "websocket fast path UNAVAILABLE" not in log, log[-3000:]
    assert "websocket fast path active: pre-rendered frames" in log, log[-3000:]
    assert "websocket fast path active: direct socket writes" in log, log[-3000:]

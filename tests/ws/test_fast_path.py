"""The fan-out's fast path (pre-rendered frames written straight to daphne's sockets) reads
private attributes of daphne, autobahn and Twisted. A dependency upgrade that changes them
would make it fall back to the slow path silently; this test, against a real daphne, fails
then: the process must report both parts of the fast path active once a frame went out."""
import json
import subprocess
import time
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from tests.factories import AccountFactory
from tests.support import PYTHON, fund, subprocess_env
from tests.ws.test_live_server import free_port, recv
from trading.services.orders import order_submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_daphne_uses_the_fast_path(market, runner):
    trader = AccountFactory()
    fund(trader, USD="10000")
    port = free_port()
    env = {**subprocess_env(), "LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exchange.asgi:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                ws = connect(f"ws://127.0.0.1:{port}/ws/v1", open_timeout=5)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "daphne did not start"
                time.sleep(0.1)
        with ws:
            ws.send(json.dumps({"op": "subscribe", "channels": [f"book:{market.symbol}"]}))
            assert recv(ws)["type"] == "subscribed"
            sequence = recv(ws)["sequence"]
            order_submit(account=trader, market=market.symbol, side="buy", type="limit",
                         price=Decimal("99.00"), quantity=Decimal("0.5"))
            runner.step()
            update = recv(ws)
            assert (update["type"], update["sequence"]) == ("update", sequence + 1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=15)
    log = stderr.decode()
    assert "websocket fast path UNAVAILABLE" not in log, log[-3000:]
    assert "websocket fast path active: pre-rendered frames" in log, log[-3000:]
    assert "websocket fast path active: direct socket writes" in log, log[-3000:]

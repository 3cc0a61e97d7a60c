"""Fixtures of the Python SDK tests: the live Bourse of the TypeScript SDK tests (daphne HTTP +
WebSocket and the engine on a free 127.0.0.1 port, on the test database), ready once the
engine owns the market. `make test` installs the SDK (`-e ./sdk/python[ccxt]` in
requirements-test.txt)."""
import time

import pytest

from tests.sdk.conftest import live_bourse  # noqa: F401  (the same live server fixture)


@pytest.fixture
def bourse_url(live_bourse):  # noqa: F811
    """The live server's URL once the engine process has taken the market (on a loaded machine
    it can start well after the web server answers, and orders would wait for it)."""
    from trading.models import EngineState

    deadline = time.monotonic() + 90
    while not EngineState.objects.filter(market__symbol="BTC-USD").exclude(owner_token="").exists():
        assert time.monotonic() < deadline, "the engine did not take the market"
        time.sleep(0.2)
    return live_bourse

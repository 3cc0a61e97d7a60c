"""The gateway harness the FIX tests and ``bench/fix_latency.py`` share (``Processes``):
it finds the gateway's port whatever LOG_LEVEL the caller runs with, and fails with the
gateway's output instead of waiting forever."""
import pytest

from tests.factories import AssetFactory, MarketFactory

from .support import Processes, RawClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_gateway_is_found_when_the_caller_logs_at_warning(monkeypatch):
    # The start-up line is an INFO log line; a bench run with LOG_LEVEL=WARNING used to wait
    # for it forever (issue 16's FIX benchmark printed nothing and hung).
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    processes = Processes(start_timeout=60)
    try:
        assert processes.port > 0
        RawClient(processes.port).close()  # it accepts connections on that port
    finally:
        print(processes.stop())


def test_a_gateway_that_cannot_start_fails_with_its_output():
    with pytest.raises(RuntimeError, match=r"FIX gateway did not start: exited with code [1-9][\s\S]*"):
        Processes(start_timeout=60, BOURSE_FIX_PIPELINE="not-a-number")

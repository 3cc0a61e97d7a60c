"""The FIX gateway and the engine count into the shared multiprocess registry
(``PROMETHEUS_MULTIPROC_DIR``): sessions, messages by MsgType, refused logons by code,
engine batches, and the gateway's heartbeat for readiness."""
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from exchange.models import Heartbeat
from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.support import fund

from .support import Processes, RawClient, new_order, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def collected(folder) -> dict:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in registry.collect() for s in family.samples}


def test_gateway_and_engine_count_into_the_shared_registry(tmp_path):
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    market = MarketFactory(base=btc, quote=usd)
    key = ApiKeyFactory()
    fund(key.account, USD="100000")
    processes = Processes(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), BOURSE_HEARTBEAT_S="0.5")
    stranger = raw = None
    try:
        raw = RawClient(processes.port, key)
        raw.logon()
        raw.expect("A")
        raw.send("D", new_order("m-1", side="1", qty="1.0000", price="100.00"))
        assert raw.expect("8").get(39) in ("0", "A")
        stranger = RawClient(processes.port, ApiKeyFactory())
        stranger.logon(signature="not-a-signature")
        stranger.expect("5")

        def counted():
            samples = collected(tmp_path)
            sessions = samples.get(("bourse_fix_sessions", ()), 0)
            orders = samples.get(("bourse_fix_messages_total", (("direction", "in"), ("msg_type", "D"))), 0)
            batches = samples.get(("bourse_engine_batch_commands_count", (("market", market.symbol),)), 0)
            return samples if sessions == 1 and orders == 1 and batches >= 1 else None

        samples = wait_for(counted, timeout=20, interval=0.2)
        assert samples, collected(tmp_path)
        assert samples[("bourse_fix_messages_total", (("direction", "in"), ("msg_type", "A")))] == 2
        assert samples[("bourse_fix_messages_total", (("direction", "out"), ("msg_type", "A")))] == 1
        assert samples[("bourse_fix_messages_total", (("direction", "out"), ("msg_type", "8")))] >= 1
        refusals = {labels: v for (name, labels), v in samples.items() if name == "bourse_auth_refusals_total"}
        assert [dict(labels)["channel"] for labels, v in refusals.items() if v] == ["fix"]
        # The gateway's heartbeat (readiness) reports the logged-on session within a beat or two.
        beat = wait_for(lambda: Heartbeat.objects.filter(role="fix", details__sessions=1).first(), timeout=10, interval=0.2)
        assert beat is not None and beat.instance.endswith(f":{processes.gateway.pid}")
    finally:
        for client in (raw, stranger):
            if client is not None:
                client.close()
        print(processes.stop())

"""/metrics: Prometheus text for allowed addresses or the bearer token only (problem+json 403
otherwise), request counts by route and status, refusals by code, and the readiness gauges."""
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def loopback_allowed(settings):
    settings.BOURSE_METRICS_ALLOW = ["127.0.0.1/32"]
    settings.BOURSE_METRICS_TOKEN = ""


def test_refused_from_outside_with_problem_json(client, settings):
    settings.BOURSE_METRICS_ALLOW = ["10.0.0.0/8"]
    settings.BOURSE_METRICS_TOKEN = "s3cret-scrape-token"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic s3cret-scrape-token"}):
        response = client.get("/metrics", REMOTE_ADDR="203.0.113.7", **headers)
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "permission_denied" and "BOURSE_METRICS_ALLOW" in problem["detail"]
        assert b"bourse_" not in response.content


def test_production_default_allows_nobody(client, settings):
    from exchange import metrics

    assert not metrics.allowed("127.0.0.1", "", forwarded_by_untrusted=False, allow=[], token="")


def test_token_admits_any_address(client, settings):
    settings.BOURSE_METRICS_ALLOW = []
    settings.BOURSE_METRICS_TOKEN = "s3cret-scrape-token"
    samples = scrape(client, REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ("bourse_ready", ()) in samples


def test_allowlisted_address_admitted_but_not_through_an_untrusted_proxy(client, loopback_allowed, settings):
    scrape(client)  # the test client is 127.0.0.1
    # Relayed by a proxy on loopback that Bourse does not trust: the real client is unknown.
    settings.BOURSE_TRUSTED_PROXIES = []
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 403
    # Through a trusted proxy, the client address it reports is what is judged.
    settings.BOURSE_TRUSTED_PROXIES = ["127.0.0.1/32"]
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 403
    settings.BOURSE_METRICS_ALLOW = ["127.0.0.1/32", "198.51.100.0/24"]
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 200


def test_requests_counted_by_route_pattern_and_status(client, loopback_allowed, market):
    before = scrape(client)
    client.get("/api/v1/time")
    client.get(f"/api/v1/markets/{market.symbol}")
    client.get("/api/v1/markets/NOPE-USD")
    client.get("/no/such/page")
    after = scrape(client)
    route = "api/v1/markets/<str:symbol>"
    assert value(after, "bourse_http_requests_total", route=route, method="GET", status="200") == \
        value(before, "bourse_http_requests_total", route=route, method="GET", status="200") + 1
    assert value(after, "bourse_http_requests_total", route=route, method="GET", status="404") >= 1
    assert value(after, "bourse_http_requests_total", route="api/v1/time", method="GET", status="200") >= 1
    assert value(after, "bourse_http_requests_total", route="<unmatched>", method="GET", status="404") >= 1
    assert value(after, "bourse_http_request_duration_seconds_count", route="api/v1/time", method="GET") >= 1
    # The raw path never becomes a label: the label set stays bounded.
    assert not any("NOPE" in str(labels) for _, labels in after)


def test_rate_limit_and_auth_refusals_counted_by_code(client, loopback_allowed, settings):
    before = scrape(client)
    client.get("/api/v1/account", HTTP_X_API_KEY="bk_nosuchkey")  # unsigned: refused
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "ip": "1/86400"}
    client.get("/api/v1/time", REMOTE_ADDR="192.0.2.50")
    assert client.get("/api/v1/time", REMOTE_ADDR="192.0.2.50").status_code == 429
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "ip": "600/60"}
    after = scrape(client)
    assert value(after, "bourse_rate_limit_refusals_total", policy="ip") == \
        value(before, "bourse_rate_limit_refusals_total", policy="ip") + 1
    refused = {labels: v - before.get((name, labels), 0.0) for (name, labels), v in after.items()
               if name == "bourse_auth_refusals_total"}
    assert sum(refused.values()) == 1
    (labels,) = [labels for labels, delta in refused.items() if delta]
    assert dict(labels)["channel"] == "api" and re.fullmatch(r"[a-z_]+", dict(labels)["code"])


def test_readiness_gauges_at_scrape_time(client, loopback_allowed, market, settings):
    from exchange import heartbeat
    from trading.models import EngineState

    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "tok"})
    heartbeat.beat("engine", {"markets": {market.symbol: {"token": "tok", "failing": False, "refused": None}}})
    samples = scrape(client)
    assert value(samples, "bourse_engine_market_up", market=market.symbol) == 1.0
    assert value(samples, "bourse_engine_queue_depth", market=market.symbol) == 0.0
    assert value(samples, "bourse_part_up", part="database", required="true") == 1.0
    assert value(samples, "bourse_part_up", part="worker", required="true") == 0.0  # no worker beats here
    assert ("bourse_settlement_lag_seconds", ()) in samples and ("bourse_audit_sealing_lag_seconds", ()) in samples
    instance = heartbeat.instance_id()
    assert value(samples, "bourse_heartbeat_age_seconds", role="engine", instance=instance) < 60


def test_order_verdict_and_engine_batches_are_measured(client, loopback_allowed, market, runner):
    from tests.factories import AccountFactory
    from tests.support import fund
    from trading.services import order_submit

    before = scrape(client)
    trader = AccountFactory()
    fund(trader, USD="1000")
    # No engine answers within the wait: the submission is measured as "pending".
    order_submit(account=trader, wait=0.05, market=market.symbol, side="buy", type="limit", price="10.00", quantity="1.0000")
    order_submit(account=trader, market=market.symbol, side="buy", type="limit", price="11.00", quantity="1.0000")
    assert runner.step() == 2  # one batch of two commands, one commit
    after = scrape(client)
    assert value(after, "bourse_order_verdict_seconds_count", outcome="pending") == \
        value(before, "bourse_order_verdict_seconds_count", outcome="pending") + 1
    assert value(after, "bourse_order_verdict_seconds_sum", outcome="pending") >= 0.05
    assert value(after, "bourse_engine_batch_commands_count", market=market.symbol) == \
        value(before, "bourse_engine_batch_commands_count", market=market.symbol) + 1
    assert value(after, "bourse_engine_batch_commands_sum", market=market.symbol) == \
        value(before, "bourse_engine_batch_commands_sum", market=market.symbol) + 2
    assert value(after, "bourse_engine_commit_seconds_count", market=market.symbol) == \
        value(before, "bourse_engine_commit_seconds_count", market=market.symbol) + 1

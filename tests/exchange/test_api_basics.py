"""The public endpoints of the foundation, problem+json errors and X-Request-ID."""
import re
import time

import pytest
from django.db import connection
from django.test import Client

from tests.factories import AssetFactory, MarketFactory

pytestmark = pytest.mark.django_db

RFC3339_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def client():
    return Client()


def test_time(client):
    before = int(time.time() * 1000)
    response = client.get("/api/v1/time")
    body = response.json()
    assert response.status_code == 200
    assert RFC3339_MICRO.match(body["server_time"])
    assert before <= body["epoch_ms"] <= int(time.time() * 1000)


def test_market_detail_and_list(client, market):
    detail = client.get("/api/v1/markets/BTC-USD")
    assert detail.status_code == 200
    assert detail.json() == {
        "symbol": "BTC-USD",
        "base": "BTC",
        "quote": "USD",
        "status": "open",
        "tick_size": "0.010000",
        "lot_size": "0.00010000",
        "min_quantity": "0.00010000",
        "min_notional": "1.000000",
        "maker_fee_rate": "0.001",
        "taker_fee_rate": "0.002",
        # No bounds configured: the defaults for USD (6 places) and BTC (8 places), three
        # digits below what this configuration's money columns hold exactly.
        **({"max_price": "1000000.000000", "max_quantity": "10000.00000000", "max_notional": "1000000.000000"}
           if connection.vendor == "sqlite" else
           {"max_price": "100000000000000000.000000", "max_quantity": "100000000000000000.00000000",
            "max_notional": "100000000000000000.000000"}),
    }
    listing = client.get("/api/v1/markets").json()
    assert listing == {"results": [detail.json()], "next_cursor": None}


def test_markets_cursor_pagination_walks_every_market_once(client, usd):
    for code in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        MarketFactory(base=AssetFactory(code=code), quote=usd)
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/markets", {"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["results"]) <= 2
        seen += [m["symbol"] for m in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["AAA-USD", "BBB-USD", "CCC-USD", "DDD-USD", "EEE-USD"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "limit=", "cursor=%%%", "cursor=bm90LWpzb24"])
def test_bad_pagination_is_a_validation_error(client, market, query):
    response = client.get(f"/api/v1/markets?{query}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] in ("limit", "cursor")


def test_unknown_market_is_problem_404(client, db):
    response = client.get("/api/v1/markets/NOPE-USD")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found" and body["status"] == 404 and body["type"] == "/docs/errors#not_found"
    assert body["request_id"] == response["X-Request-ID"]


def test_unknown_api_path_is_problem_404(client, db):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response["X-Request-ID"]


def test_wrong_method_is_problem_405(client, market):
    response = client.post("/api/v1/markets", data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_request_id_is_echoed_or_generated(client, db):
    assert client.get("/api/v1/time", HTTP_X_REQUEST_ID="client-123").headers["X-Request-ID"] == "client-123"
    generated = client.get("/api/v1/time").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # Header injection or absurd ids are replaced, not echoed.
    replaced = client.get("/api/v1/time", HTTP_X_REQUEST_ID="bad id\twith spaces").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_health_checks(client, db, settings):
    settings.BOURSE_READINESS_REQUIRED = ["database"]  # the other roles: tests/exchange/test_readiness.py
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


def test_readyz_reports_unreachable_redis(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")


def test_logs_are_json_with_request_id(client, db, capsys):
    import json
    import logging

    from exchange.logging import RequestIdFilter

    handler = logging.StreamHandler()
    from pythonjsonlogger.json import JsonFormatter

    handler.setFormatter(JsonFormatter("%(levelname)s %(message)s %(request_id)s"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("bourse.test")
    logger.addHandler(handler)
    try:
        from exchange.context import request_id_var

        token = request_id_var.set("req-42")
        logger.warning("hello")
        request_id_var.reset(token)
    finally:
        logger.removeHandler(handler)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line == {"levelname": "WARNING", "message": "hello", "request_id": "req-42"}

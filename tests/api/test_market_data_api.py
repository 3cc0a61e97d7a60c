"""GET /assets, /tickers, /markets/{symbol}/candles; time ranges on the lists; unknown query
parameters refused by every operation the OpenAPI document lists."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import yaml
from django.urls import URLPattern

from exchange.apiview import BourseApi
from exchange.urls import api_v1
from tests.factories import AccountFactory, ApiKeyFactory, AssetFactory, MarketFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Candle, Fill, Order, Trade
from trading.services import order_submit

pytestmark = pytest.mark.django_db


def problem(response, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


@pytest.fixture
def traded(market, runner):
    """Two traders, three trades in three batches; the trades' times then spread an hour apart."""
    maker, taker = AccountFactory(), AccountFactory()
    for account in (maker, taker):
        fund(account, USD="10000", BTC="10")
    for price in ("100.00", "101.00", "102.00"):
        order_submit(account=maker, market="BTC-USD", side="sell", type="limit", price=D(price), quantity=D("0.1"))
        order_submit(account=taker, market="BTC-USD", side="buy", type="limit", price=D(price), quantity=D("0.1"))
        runner.step()
    base = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    for i, trade in enumerate(Trade.objects.order_by("sequence")):
        moment = base + timedelta(hours=i)
        Trade.objects.filter(pk=trade.pk).update(created_at=moment)
        Fill.objects.filter(trade=trade).update(created_at=moment)
        Order.objects.filter(pk__in=[trade.taker_order_id, trade.maker_order_id]).update(created_at=moment)
    return maker, taker


def test_assets_list_symbol_and_decimals(client, market):
    AssetFactory(code="ETH", scale=18)
    body = client.get("/api/v1/assets").json()
    assert body == {"results": [{"symbol": "BTC", "decimals": 8}, {"symbol": "ETH", "decimals": 18},
                                {"symbol": "USD", "decimals": 6}], "next_cursor": None}
    page = client.get("/api/v1/assets", {"limit": "2"}).json()
    assert [a["symbol"] for a in page["results"]] == ["BTC", "ETH"]
    rest = client.get("/api/v1/assets", {"cursor": page["next_cursor"]}).json()
    assert rest["results"] == [{"symbol": "USD", "decimals": 6}]


def test_tickers_are_each_markets_ticker(client, traded, market):
    other = MarketFactory(base=AssetFactory(code="ETH", scale=8), quote=market.quote)
    body = client.get("/api/v1/tickers").json()
    assert [t["market"] for t in body["results"]] == ["BTC-USD", other.symbol]
    for ticker in body["results"]:
        assert ticker == client.get(f"/api/v1/markets/{ticker['market']}/ticker").json()
    assert body["results"][0]["last_price"] == "102.000000"


def test_candles_oldest_first_with_range_and_limit(client, traded, market):
    Candle.objects.all().delete()
    from trading.candles import candles_backfill

    candles_backfill(market)
    url = "/api/v1/markets/BTC-USD/candles"
    bars = client.get(url, {"interval": "1h"}).json()
    assert [b["open_time"] for b in bars] == [
        "2026-11-23T18:00:00.000000Z", "2026-11-23T19:00:00.000000Z", "2026-11-23T20:00:00.000000Z"]
    assert bars[0] == {"open_time": "2026-11-23T18:00:00.000000Z", "open": "100.000000", "high": "100.000000",
                       "low": "100.000000", "close": "100.000000", "volume": "0.10000000",
                       "quote_volume": "10.000000", "trades": 1}
    # without start: the newest `limit`, still oldest first; with start: from there
    assert [b["close"] for b in client.get(url, {"interval": "1h", "limit": "2"}).json()] == ["101.000000", "102.000000"]
    assert [b["close"] for b in client.get(url, {"interval": "1h", "limit": "2", "start": "2026-11-23T18:00:00Z"}).json()] \
        == ["100.000000", "101.000000"]
    within = client.get(url, {"interval": "1h", "start": "2026-11-23T18:30:00Z", "end": "2026-11-23T19:00:00+00:00"})
    assert [b["close"] for b in within.json()] == ["101.000000"]
    day = client.get(url, {"interval": "1d"}).json()
    assert [(b["open"], b["high"], b["low"], b["close"], b["trades"]) for b in day] == [
        ("100.000000", "102.000000", "100.000000", "102.000000", 3)]
    assert client.get(url, {"interval": "4h", "end": "2026-11-01T00:00:00Z"}).json() == []


@pytest.mark.parametrize("query, field, code", [
    ({}, "interval", "invalid_choice"),
    ({"interval": "2m"}, "interval", "invalid_choice"),
    ({"interval": "1m", "limit": "0"}, "limit", "invalid"),
    ({"interval": "1m", "limit": "1001"}, "limit", "invalid"),
    ({"interval": "1m", "limit": "ten"}, "limit", "invalid"),
    ({"interval": "1m", "start": "yesterday"}, "start", "invalid"),
    ({"interval": "1m", "end": "2026-11-23T18:00:00"}, "end", "invalid"),  # no offset
    ({"interval": "1m", "start": "2026-11-24T00:00:00Z", "end": "2026-11-23T00:00:00Z"}, "start", "after_end"),
    ({"interval": "1m", "since": "1"}, "since", "unknown_parameter"),
])
def test_bad_candle_queries_are_refused_with_the_field(client, market, query, field, code):
    body = problem(client.get("/api/v1/markets/BTC-USD/candles", query))
    assert body["code"] == "validation_error"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]


def test_candles_of_an_unknown_market_are_not_found(client, db):
    assert problem(client.get("/api/v1/markets/NOPE-USD/candles", {"interval": "1m"}), 404)["code"] == "not_found"


def test_public_trades_filter_by_time(client, traded):
    url = "/api/v1/markets/BTC-USD/trades"
    everything = client.get(url).json()["results"]
    assert [t["trade_id"] for t in everything] == ["3", "2", "1"]
    window = client.get(url, {"start_time": "2026-11-23T19:00:00Z", "end_time": "2026-11-23T20:59:59.999999Z"})
    assert [t["trade_id"] for t in window.json()["results"]] == ["3", "2"]
    after = client.get(url, {"start_time": "2026-11-23T19:00:00.000001Z"}).json()["results"]
    assert [t["trade_id"] for t in after] == ["3"]
    before = client.get(url, {"end_time": "2026-11-23T20:00:00+02:00"}).json()["results"]  # 18:00 UTC
    assert [t["trade_id"] for t in before] == ["1"]


def test_private_lists_filter_by_time(traded):
    maker, _ = traded
    client = SignedClient(ApiKeyFactory(account=maker, scopes=["read"]))
    query = {"start_time": "2026-11-23T18:30:00Z", "end_time": "2026-11-23T19:30:00Z"}
    fills = client.get("/api/v1/fills", query=query).json()["results"]
    assert [f["trade_id"] for f in fills] == ["2"]
    orders = client.get("/api/v1/orders", query={**query, "status": "all"}).json()["results"]
    assert [o["price"] for o in orders] == ["101.000000"]
    ledger = client.get("/api/v1/ledger", query={"end_time": "2000-01-01T00:00:00Z"}).json()["results"]
    assert ledger == []
    assert client.get("/api/v1/ledger", query={"start_time": "2000-01-01T00:00:00Z"}).json()["results"]


@pytest.mark.parametrize("path", ["/api/v1/orders", "/api/v1/fills", "/api/v1/ledger", "/api/v1/markets/BTC-USD/trades"])
@pytest.mark.parametrize("query, field, code", [
    ({"start_time": "2026-13-01T00:00:00Z"}, "start_time", "invalid"),
    ({"end_time": "1700000000000"}, "end_time", "invalid"),
    ({"start_time": "2026-11-23 18:00:00Z"}, "start_time", "invalid"),
    ({"start_time": "2026-11-23T19:00:00Z", "end_time": "2026-11-23T18:00:00Z"}, "start_time", "after_end"),
])
def test_bad_time_ranges_are_refused_naming_the_field(market, trader, path, query, field, code):
    client = SignedClient(ApiKeyFactory(account=trader, scopes=["read"]))
    body = problem(client.get(path, query=query))
    assert body["code"] == "validation_error"
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]


def test_every_api_view_refuses_unknown_query_parameters_by_construction():
    views = [p.callback.view_class for p in api_v1 if isinstance(p, URLPattern) and hasattr(p.callback, "view_class")]
    mine = [v for v in views if v.__module__.split(".")[0] in ("trading", "accounts", "apikeys", "exchange")]
    assert len(mine) >= 15
    assert [v.__name__ for v in mine if not issubclass(v, BourseApi)] == []


def test_every_documented_operation_refuses_an_unknown_query_parameter(client, market, trader):
    signed = SignedClient(ApiKeyFactory(account=trader, scopes=["read", "trade"]))
    with open("docs/openapi.yaml") as spec:
        document = yaml.safe_load(spec)
    checked = []
    for path, item in document["paths"].items():
        if path.endswith("openapi.yaml"):
            continue
        concrete = (path.replace("{symbol}", "BTC-USD").replace("{order_id}", "1")
                    .replace("{client_order_id}", "c1"))
        assert "{" not in concrete, f"a path parameter this test does not know: {path}"
        for method, operation in item.items():
            if method not in ("get", "post", "delete", "put", "patch"):
                continue
            public = operation.get("security") in ([], [{}])
            if public:
                response = client.generic(method.upper(), f"{concrete}?bogus_param=1")
            else:
                response = signed.request(method.upper(), concrete, query="bogus_param=1")
            body = problem(response)
            assert [e["code"] for e in body["errors"]] == ["unknown_parameter"], (method, path, body)
            checked.append((method, path))
    assert ("get", "/api/v1/markets/{symbol}/candles") in checked and ("get", "/api/v1/assets") in checked
    assert len(checked) >= 19

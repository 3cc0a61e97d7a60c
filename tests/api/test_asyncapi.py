"""docs/asyncapi.yaml: current, valid for the AsyncAPI parser, strict enough to catch a frame it
does not describe, and served next to the OpenAPI docs. (The WebSocket tests validate every
frame they receive against it: tests/ws/helpers.py ``checked_frame``.)"""
import json

import pytest
import yaml
from django.test import Client

from exchange import docs
from exchange.asyncapi import server_frame_validator

from .contract_tools import TOOLS, run

pytestmark = pytest.mark.django_db


def parse(path):
    assert (TOOLS / "node_modules" / "@asyncapi" / "parser").exists(), "`make test` installs tools/"
    result = run("node", "asyncapi-validate.mjs", str(path))
    return result.returncode, json.loads(result.stdout)


def test_committed_asyncapi_is_current():
    assert docs.ASYNCAPI_PATH.read_text() == docs.asyncapi_yaml(), "stale: run `make openapi` and commit the result"


def test_the_asyncapi_parser_validates_it_without_error_or_warning():
    status, report = parse(docs.ASYNCAPI_PATH)
    assert status == 0 and report["valid"] and report["version"] == "3.0.0", report
    # severity 0 error, 1 warning (2 is information: "3.1.0 exists", 3 hint)
    assert [d for d in report["diagnostics"] if d["severity"] <= 1] == [], report["diagnostics"]


def test_the_parser_refuses_a_broken_document(tmp_path):
    document = yaml.safe_load(docs.ASYNCAPI_PATH.read_text())
    document["operations"]["ping"]["action"] = "publish"  # AsyncAPI 2 vocabulary, not 3.0
    del document["channels"]["v1"]["messages"]["pong"]   # a reply referring to a missing message
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document))
    status, report = parse(broken)
    assert status == 1 and not report["valid"]
    assert any(d["severity"] == 0 for d in report["diagnostics"])


def test_payloads_share_the_openapi_components():
    openapi = yaml.safe_load(docs.OPENAPI_PATH.read_text())["components"]["schemas"]
    asyncapi = yaml.safe_load(docs.ASYNCAPI_PATH.read_text())["components"]["schemas"]
    for name in ("Order", "Fill", "Trade", "Ticker", "Balance", "CodeEnum"):
        assert asyncapi[name] == openapi[name], name


@pytest.mark.parametrize("frame, ok", [
    ({"type": "pong", "id": 1}, True),
    ({"type": "pong", "id": 1, "extra": True}, False),  # a member the document does not declare
    ({"type": "error", "code": "resync_required", "message": "m", "id": None, "channel": "orders", "last": 4}, True),
    ({"type": "error", "code": "no_such_code", "message": "m", "id": None}, False),
    ({"channel": "balances", "type": "balance", "sequence": 3,
      "data": {"asset": "USD", "total": "1.00", "available": "1.00", "locked": "0.00"}}, True),
    ({"channel": "balances", "type": "balance", "sequence": 3, "data": {"asset": "USD"}}, False),
    ({"channel": "book:BTC-USD", "type": "update", "market": "BTC-USD", "sequence": 2,
      "bids": [["1.00", "0"]], "asks": [], "checksum": 0}, True),
    ({"channel": "book:BTC-USD", "type": "update", "market": "BTC-USD", "sequence": 2,
      "bids": [["1.00", "0"]], "asks": []}, False),  # every book frame carries its checksum
    ({"channel": "book:BTC-USD", "type": "update", "market": "BTC-USD", "sequence": 2,
      "bids": [[1.0, 0]], "asks": [], "checksum": 0}, False),  # numbers, not decimal strings
    ({"channel": "candles:BTC-USD:1m", "type": "candle", "data": {
        "open_time": "2026-11-23T18:00:00.000000Z", "open": "1.00", "high": "1.00", "low": "1.00", "close": "1.00",
        "volume": "1.0", "quote_volume": "1.00", "trades": 1}}, True),
])
def test_the_frame_validator_is_strict(frame, ok):
    assert server_frame_validator().is_valid(frame) is ok


def test_served_as_yaml_and_as_a_page():
    client = Client()
    response = client.get("/docs/asyncapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(b"".join(response.streaming_content)) == yaml.safe_load(docs.ASYNCAPI_PATH.read_text())
    page = client.get("/docs/asyncapi")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="message-bookUpdate"' in html and 'href="/docs/asyncapi.yaml"' in html

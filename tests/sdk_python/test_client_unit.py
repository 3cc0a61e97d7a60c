"""The SDK's client behaviour that needs no server: retries only where safe, RateLimit
parsing, clock adoption, cursor iteration, and the local order book's gap and checksum checks."""
import json
import zlib

import httpx
import pytest
from bourse import BourseError, Client, GapError, OrderBook, RetryPolicy, book_checksum, parse_rate_limit

ORDER = {"order_id": "7", "client_order_id": None, "market": "BTC-USD", "side": "buy", "type": "limit",
         "time_in_force": "gtc", "post_only": False, "stp": "cancel_newest", "price": "1.00", "quantity": "1",
         "quote_quantity": None, "stop_price": None, "expire_time": None,
         "filled_quantity": "0", "remaining_quantity": "1", "average_price": None,
         "status": "open", "reject_reason": None, "cancel_reason": None, "created_at": "t", "updated_at": "t"}


def _problem(status, code, **extra):
    return httpx.Response(status, json={"type": f"/docs/errors#{code}", "title": code, "status": status,
                                        "detail": code, "code": code, "request_id": "r", **extra},
                          headers={"Content-Type": "application/problem+json", **extra.pop("headers", {})})


def _client(handler, **kwargs):
    return Client("http://bourse.test", "bk_x", secret="s", retry=RetryPolicy(backoff_s=0, **kwargs),
                  http=httpx.Client(transport=httpx.MockTransport(handler)))


def test_an_order_without_client_order_id_is_never_retried():
    calls = []

    def handler(request):
        calls.append(request)
        return _problem(503, "service_unavailable")

    with pytest.raises(BourseError) as refused:
        _client(handler).place_order("BTC-USD", "buy", "limit", quantity="1", price="1.00")
    assert refused.value.code == "service_unavailable" and len(calls) == 1

    calls.clear()

    def lost(request):
        calls.append(request)
        raise httpx.ReadTimeout("lost", request=request)

    with pytest.raises(httpx.ReadTimeout):
        _client(lost).place_order("BTC-USD", "buy", "limit", quantity="1", price="1.00")
    assert len(calls) == 1


def test_an_order_with_client_order_id_is_retried_with_a_fresh_signature():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("down", request=request)
        return httpx.Response(200, json={**ORDER, "client_order_id": "c1"})

    order = _client(handler).place_order("BTC-USD", "buy", "limit", quantity="1", price="1.00", client_order_id="c1")
    assert order.client_order_id == "c1" and len(calls) == 2
    assert calls[0].headers["X-API-Nonce"] != calls[1].headers["X-API-Nonce"]
    assert calls[0].content == calls[1].content and json.loads(calls[1].content)["client_order_id"] == "c1"


def test_a_get_waits_retry_after_then_gives_up():
    calls = []

    def handler(request):
        calls.append(request)
        return _problem(429, "rate_limited", headers={"Retry-After": "0"})

    with pytest.raises(BourseError) as refused:
        _client(handler, max_retries=2).account()
    assert refused.value.status == 429 and refused.value.retry_after == 0 and len(calls) == 3


def test_a_rate_limit_wait_longer_than_allowed_is_not_slept():
    calls = []

    def handler(request):
        calls.append(request)
        return _problem(429, "rate_limited", headers={"Retry-After": "60"})

    with pytest.raises(BourseError):
        _client(handler).account()
    assert len(calls) == 1


def test_timestamp_out_of_window_adopts_the_server_clock_once():
    seen = []

    def handler(request):
        seen.append(int(request.headers["X-API-Timestamp"]))
        if len(seen) == 1:
            return _problem(401, "timestamp_out_of_window", server_epoch_ms=seen[0] + 60_000)
        return httpx.Response(200, json={"results": [], "next_cursor": None})

    client = _client(handler)
    assert client.balances().results == []
    assert 59_000 < client.clock_offset_ms <= 60_000 and seen[1] - seen[0] >= 59_000


def test_cursor_iteration_and_query_signing():
    pages = {None: (["a", "b"], "c2"), "c2": (["c"], None)}
    seen = []

    def handler(request):
        cursor = request.url.params.get("cursor")
        seen.append(request.url.query.decode())
        rows, nxt = pages[cursor]
        return httpx.Response(200, json={"results": [{"asset": r, "total": "1", "available": "1", "locked": "0"}
                                                     for r in rows], "next_cursor": nxt},
                              headers={"RateLimit-Policy": '"key";q=1200;w=60, "orders";q=50;w=10',
                                       "RateLimit": '"key";r=1187;t=41'})

    client = _client(handler)
    assert [b.asset for b in client.iter_balances(limit=2)] == ["a", "b", "c"]
    assert seen == ["limit=2", "limit=2&cursor=c2"]
    assert client.rate_limit.remaining("key") == 1187


def test_rate_limit_parsing():
    parsed = parse_rate_limit('"key";q=1200;w=60, "orders";q=50;w=10', '"key";r=1186;t=40, "orders";r=49;t=7')
    assert [(p.name, p.quota, p.window) for p in parsed.policies] == [("key", 1200, 60), ("orders", 50, 10)]
    assert [(lim.name, lim.remaining, lim.reset) for lim in parsed.limits] == [("key", 1186, 40), ("orders", 49, 7)]
    assert parse_rate_limit(None, None) is None


def test_private_requests_need_credentials():
    with pytest.raises(ValueError, match="credentials"):
        Client("http://bourse.test").account()


def test_order_book_sequence_gap():
    book = OrderBook("BTC-USD")
    book.apply({"type": "snapshot", "sequence": 5, "bids": [["99.50", "1"], ["100.00", "2"]], "asks": [["101", "1"]]})
    book.apply({"type": "update", "sequence": 6, "bids": [["99.50", "0"]], "asks": [["100.50", "3"]]})
    assert book.bids() == [["100.00", "2"]] and book.asks() == [["100.50", "3"], ["101", "1"]]
    with pytest.raises(GapError):
        book.apply({"type": "update", "sequence": 8, "bids": [], "asks": []})
    assert not book.ready


def test_order_book_checksum():
    book = OrderBook("BTC-USD")
    bids, asks = [["100.00", "2"], ["99.00", "1"]], [["101.00", "1"]]
    expected = zlib.crc32(b"100.00:2:101.00:1:99.00:1") & 0xFFFFFFFF
    assert book_checksum(bids, asks) == expected
    book.apply({"type": "snapshot", "sequence": 1, "bids": bids, "asks": asks, "checksum": expected})
    with pytest.raises(GapError, match="checksum"):
        book.apply({"type": "update", "sequence": 2, "bids": [["98.00", "1"]], "asks": [], "checksum": expected})

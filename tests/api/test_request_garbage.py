"""A REST request leaves nothing for Python's cyclic garbage collector: its objects are freed
by reference counting as it ends. Requests through the pooled handler daphne serves
(``exchange.httppool``), with every middleware, delivered as daphne delivers them (the
body, then ``http.disconnect`` once the response is complete).

What made them cyclic garbage, each cut now: the handler re-raising the disconnect watch's
``RequestAborted`` in its own frame (``exchange/httppool.py``), and DRF's view, request,
response and serializers pointing at one another (``exchange.apiview.BourseApi._release``).
With every request left to the collector, its collections took 10-12 % of a REST process's
CPU under load (bench/order_path.md)."""
import asyncio
import gc
import json

import pytest
from django.db import connections

from exchange.httppool import PooledASGIHandler
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.0100"}


@pytest.fixture(autouse=True)
def steady(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0  # no engine: a placement answers 202
    settings.BOURSE_AUDIT_SEAL_MODE = "off"


@pytest.fixture
def signer(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


async def _serve(app, method: str, path: str, headers: dict, body: bytes = b"") -> list[dict]:
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": body})
    sent: list[dict] = []

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            inbox.put_nowait({"type": "http.disconnect"})  # daphne: the response is complete

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         *((name.lower().encode(), value.encode()) for name, value in headers.items())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    await app(scope, inbox.get, send)
    return sent


def _garbage_of(app, requests) -> tuple[list[int], list[str]]:
    """Serve each ``(method, path, headers, body)`` with the collector off, then collect: the
    statuses, and the types of every object the collector had to free."""

    async def run():
        return [(await _serve(app, *request))[0]["status"] for request in requests]

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        statuses = asyncio.run(run())
        gc.collect()
        kinds = sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return statuses, kinds


def _request_kinds(kinds: list[str]) -> list[str]:
    return [kind for kind in kinds if kind.startswith(("django.", "rest_framework.", "exchange.", "apikeys.",
                                                         "trading.", "accounts.", "audit."))]


@pytest.fixture
def app():
    app = PooledASGIHandler(1)
    yield app
    app._pool.submit(connections.close_all).result()  # the pool thread's connection, before the database goes
    app._pool.shutdown()


def test_the_hot_requests_leave_no_cyclic_garbage(signer, app):
    body = json.dumps(LIMIT).encode()

    def signed(method, path, payload=b""):
        return (method, path, signer.headers(method, path, body=payload), payload)

    # warm: the key cached, the market known, the pool thread and its connection up
    asyncio.run(_serve(app, *signed("POST", "/api/v1/orders", body)))
    asyncio.run(_serve(app, *signed("GET", "/api/v1/account")))

    statuses, kinds = _garbage_of(app, [signed("POST", "/api/v1/orders", body)])
    assert statuses == [202] and _request_kinds(kinds) == [], kinds
    order = Order.objects.latest("id")
    path = f"/api/v1/orders/{order.pk}"
    for request, status in [(signed("GET", "/api/v1/account"), 200), (signed("GET", "/api/v1/balances"), 200),
                            (signed("GET", path), 200), (signed("DELETE", path), 202),
                            (("GET", "/api/v1/markets", {}, b""), 200), (("GET", "/api/v1/time", {}, b""), 200)]:
        statuses, kinds = _garbage_of(app, [request])
        assert statuses == [status] and _request_kinds(kinds) == [], (request[:2], statuses, _request_kinds(kinds))

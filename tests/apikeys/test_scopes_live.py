"""Scopes by what a request does, not how it is spelled (issue 13, item 5), against daphne:
HEAD needs what GET needs, and a permission error names the scope as the docs do."""
import json
import time
import urllib.request
from urllib.error import HTTPError

import pytest

from apikeys import signing
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient, fresh_nonce
from tests.ws.test_live_server import daphne

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def call(base, key, method, path, body=b""):
    headers = signing.signed_headers(key_id=key.key_id, timestamp=int(time.time() * 1000), nonce=fresh_nonce(),
                                     method=method, path=path, query="", body=body, secret=key.secret, private_key=None)
    request = urllib.request.Request(base + path, data=body or None, method=method,
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except HTTPError as error:
        return error.code, error.read()


def test_head_needs_what_get_needs_and_errors_name_scopes_plainly(market):
    reader = ApiKeyFactory(scopes=["read"])
    trader_only = ApiKeyFactory(scopes=["trade"])
    with daphne() as url:
        base = url.replace("ws://", "http://").removesuffix("/ws/v1")
        for path in ("/api/v1/orders", "/api/v1/account", "/api/v1/fills"):
            assert call(base, reader, "GET", path)[0] == 200, path
            assert call(base, reader, "HEAD", path)[0] == 200, path  # HEAD reads: scope read
            assert call(base, trader_only, "HEAD", path)[0] == 403, path  # and needs read, not trade
        body = json.dumps({"market": market.symbol, "side": "buy", "type": "limit", "price": "1", "quantity": "1"}).encode()
        status, raw = call(base, reader, "POST", "/api/v1/orders", body)
        problem = json.loads(raw)
        assert (status, problem["code"], problem["required_scope"]) == (403, "permission_denied", "trade")
        assert problem["detail"] == "This endpoint needs the 'trade' scope; the key has read."
        status, raw = call(base, trader_only, "GET", "/api/v1/orders")
        assert json.loads(raw)["detail"] == "This endpoint needs the 'read' scope; the key has trade."


def test_a_scope_refusal_is_audited(market):
    from audit.models import AuditEvent

    reader = ApiKeyFactory(scopes=["read"])
    response = SignedClient(reader).post("/api/v1/orders", json={"market": market.symbol, "side": "buy",
                                                                 "type": "limit", "price": "1", "quantity": "1"})
    assert response.json()["code"] == "permission_denied"
    event = AuditEvent.objects.get(action="auth.failed", reason="permission_denied")
    assert (event.target_id, event.after["channel"]) == (reader.key_id, "api")

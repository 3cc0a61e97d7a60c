"""A client generated from docs/openapi.yaml by openapi-python-client (pinned in
requirements-test.txt), as an integrator would generate it, handles every status the document
declares for POST /orders — each one produced by the real server — without an
``UnexpectedStatus``: the document lists every status the operation answers."""
import importlib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from django.core.wsgi import get_wsgi_application

from apikeys.signing import signed_headers
from exchange import docs
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import fresh_nonce
from tests.support import PYTHON, fund, subprocess_env
from trading.models import EngineState

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """``openapi-python-client generate`` over the committed document, imported."""
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: nothing but the generator
    result = subprocess.run(
        [str(Path(sys.executable).with_name("openapi-python-client")), "generate",
         "--path", str(docs.OPENAPI_PATH), "--output-path", str(out / "bourse_client"), "--meta", "none",
         "--config", str(config)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "Warning" not in result.stdout, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        yield (importlib.import_module("bourse_client"), importlib.import_module("bourse_client.api.orders.orders_submit"),
               importlib.import_module("bourse_client.models"), importlib.import_module("bourse_client.errors"))
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == "bourse_client" or n.startswith("bourse_client.")]:
            del sys.modules[name]


class Signer:
    """An httpx request hook signing like docs/signing.md (``content_type`` may be forced)."""

    def __init__(self, key):
        self.key, self.content_type = key, None

    def __call__(self, request: httpx.Request):
        if self.key is None:
            return
        body = request.read()
        request.headers.update(signed_headers(
            key_id=self.key.key_id, timestamp=int(time.time() * 1000), nonce=fresh_nonce(), method=request.method,
            path=request.url.path, query=request.url.query.decode(), body=body,
            secret=getattr(self.key, "secret", None), private_key=getattr(self.key, "private_key", None), window=None))
        if self.content_type:
            request.headers["Content-Type"] = self.content_type


def client_for(package, key):
    signer = Signer(key)
    client = package.AuthenticatedClient(
        base_url="http://testserver", token="unused", raise_on_unexpected_status=True,
        httpx_args={"transport": httpx.WSGITransport(app=get_wsgi_application()), "event_hooks": {"request": [signer]}},
    )
    return client, signer


def test_every_documented_status_of_post_orders_is_handled(generated, settings, market, monkeypatch):
    package, submit, models, errors_module = generated
    documented = set(yaml.safe_load(docs.OPENAPI_PATH.read_text())["paths"]["/api/v1/orders"]["post"]["responses"])
    account = AccountFactory()
    fund(account, USD="1000", BTC="1")
    key = ApiKeyFactory(account=account)
    client, signer = client_for(package, key)
    reader_client, _ = client_for(package, ApiKeyFactory(account=account, scopes=("read",)))
    anonymous, _ = client_for(package, None)
    body = models.OrderSubmit.from_dict

    def post(order, via=client):
        response = submit.sync_detailed(client=via, body=body(order))  # raises UnexpectedStatus if undocumented
        assert response.parsed is not None, response.status_code
        return response

    seen = {}
    engine = subprocess.Popen([PYTHON, "manage.py", "run_engine"], env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The engine owns the market before the first order (a loaded machine starts it slowly).
        deadline = time.monotonic() + 60
        while not EngineState.objects.filter(market=market).exclude(owner_token="").exists():
            assert engine.poll() is None and time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.1)
        settings.BOURSE_ENGINE_WAIT_S = 10
        seen[201] = post({**LIMIT, "client_order_id": "g-1"})
        assert isinstance(seen[201].parsed, models.Order) and seen[201].parsed.status == "open"
        seen[200] = post({**LIMIT, "client_order_id": "g-1"})  # the same again: the existing order
        seen[409] = post({**LIMIT, "client_order_id": "g-1", "price": "99.00"})
    finally:
        engine.terminate()
        engine.wait(10)
    settings.BOURSE_ENGINE_WAIT_S = 0
    seen[202] = post({**LIMIT, "client_order_id": "g-2"})  # nobody answers: pending
    seen[400] = post({**LIMIT, "price": "abc"})
    seen[401] = post(LIMIT, via=anonymous)
    seen[403] = post(LIMIT, via=reader_client)
    seen[422] = post({**LIMIT, "quantity": "50"})  # more than the account holds
    signer.content_type = "text/plain"
    seen[415] = post(LIMIT)
    signer.content_type = None
    settings.BOURSE_MAX_BODY_BYTES = 20
    seen[413] = post(LIMIT)
    settings.BOURSE_MAX_BODY_BYTES = 65536
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": "1/3600"}
    post(LIMIT)  # the window's one order
    seen[429] = post(LIMIT)
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": "50/10", "key": "1200/60"}

    def store_down(*args, **kwargs):
        raise ConnectionError("the rate-limit store is down")

    monkeypatch.setattr("exchange.ratelimit.get_usage", store_down)  # the embedded cache
    monkeypatch.setattr("exchange.ratelimit._redis_counts", store_down)  # Redis (REDIS_URL)
    monkeypatch.setattr("apikeys.gate._redis", store_down)  # the authentication gate's one round trip
    seen[503] = post(LIMIT)

    assert seen[503].headers["Retry-After"].isdigit()
    for status, response in seen.items():
        assert response.status_code == status, (status, response.status_code, response.content[:300])
        if status >= 400:
            assert isinstance(response.parsed, models.Problem), status
    assert {str(s) for s in seen} == documented
    # Without the document declaring a status, the generated client refuses it: that is what
    # every status above would have done had the document left it out.
    teapot = package.AuthenticatedClient(base_url="http://testserver", token="unused", raise_on_unexpected_status=True,
                                         httpx_args={"transport": httpx.MockTransport(lambda request: httpx.Response(418))})
    with pytest.raises(errors_module.UnexpectedStatus):
        submit.sync_detailed(client=teapot, body=body(LIMIT))

"""Rate limits: headers on every authenticated response, 429 with Retry-After past a budget,
budgets independent per key, per account (orders), per IP (anonymous), and auth failures."""
import re

import pytest
from rest_framework.response import Response

from apikeys.authentication import PrivateApi
from exchange import errors, ratelimit
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient

pytestmark = pytest.mark.django_db

POLICY = re.compile(r'^"key";q=(\d+);w=(\d+), "orders";q=(\d+);w=(\d+)$')
STATE = re.compile(r'^"key";r=(\d+);t=(\d+)$')


@pytest.fixture
def limits(settings, monkeypatch):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": "3/60", "orders": "2/10", "ip": "4/60",
                                   "auth_failures": "5/60"}
    # Budgets count in fixed windows: a test that crossed a window's end part-way (a slow,
    # loaded machine) would see its count reset. The limiter's clock stands still instead.
    import types

    from django_ratelimit import core

    frozen = int(core.time.time())
    monkeypatch.setattr(core, "time", types.SimpleNamespace(time=lambda: frozen))
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: frozen))  # the Redis path's clock
    return settings.BOURSE_RATE_LIMITS


@pytest.fixture
def key(trader):
    return ApiKeyFactory(account=trader)


@pytest.mark.parametrize("path, status", [("/api/v1/account", 200), ("/api/v1/ledger?limit=0", 400),
                                          ("/api/v1/ledger?asset=NOPE", 422)])
def test_every_authenticated_response_carries_ratelimit_headers(key, path, status):
    path, _, query = path.partition("?")
    response = SignedClient(key).get(path, query=query)
    assert response.status_code == status
    policy = POLICY.match(response["RateLimit-Policy"])
    assert policy and policy.groups() == ("1200", "60", "50", "10")
    state = STATE.match(response["RateLimit"])
    assert state and int(state.group(1)) == 1199 and 0 <= int(state.group(2)) <= 60


def test_permission_denied_still_carries_the_headers(trader):
    response = SignedClient(ApiKeyFactory(account=trader, scopes=["trade"])).get("/api/v1/account")
    assert response.status_code == 403
    assert STATE.match(response["RateLimit"])


def test_past_the_key_budget_429_with_retry_after_and_other_keys_unaffected(limits, key, trader):
    signed = SignedClient(key)
    remaining = [STATE.match(signed.get("/api/v1/account")["RateLimit"]).group(1) for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = signed.get("/api/v1/account")
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited" and body["policy"] == "key"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit"].startswith('"key";r=0;')
    # another key of the same account has its own budget
    assert SignedClient(ApiKeyFactory(account=trader)).get("/api/v1/account").status_code == 200


def test_anonymous_requests_are_limited_per_ip(limits, client):
    for expected_remaining in ("3", "2", "1", "0"):
        response = client.get("/api/v1/time", REMOTE_ADDR="198.51.100.1")
        assert response.status_code == 200
        assert response["RateLimit-Policy"] == '"ip";q=4;w=60'
        assert response["RateLimit"].startswith(f'"ip";r={expected_remaining};')
    refused = client.get("/api/v1/time", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 429 and refused.json()["policy"] == "ip" and refused["Retry-After"]
    assert client.get("/api/v1/time", REMOTE_ADDR="198.51.100.2").status_code == 200


def test_repeated_auth_failures_from_one_address_are_throttled(limits, key, trader):
    # given five failed attempts from one address
    forger = SignedClient(ApiKeyFactory(account=trader))
    forger.key.secret = "wrong"
    for _ in range(5):
        response = forger.get("/api/v1/account", extra={"REMOTE_ADDR": "198.51.100.7"})
        assert response.json()["code"] == "invalid_credentials"
    # then that address waits, even with a correct signature (checked before signatures)...
    blocked = SignedClient(key).get("/api/v1/account", extra={"REMOTE_ADDR": "198.51.100.7"})
    assert blocked.status_code == 429 and blocked.json()["policy"] == "auth_failures" and blocked["Retry-After"]
    # ...while other addresses are unaffected
    assert SignedClient(key).get("/api/v1/account", extra={"REMOTE_ADDR": "198.51.100.8"}).status_code == 200


class OrderLikeApi(PrivateApi):
    required_scope = "trade"

    @ratelimit.orders_rate_limit
    def post(self, request):
        return Response({"ok": True}, status=201)


def test_orders_budget_is_per_account_and_shown_with_the_key_budget(limits, trader, other_trader):
    from django.test import override_settings
    from django.urls import path

    urlpatterns = [path("api/v1/test-orders", OrderLikeApi.as_view())]

    class Urls:
        pass

    Urls.urlpatterns = urlpatterns
    with override_settings(ROOT_URLCONF=Urls):
        first_key, second_key = ApiKeyFactory(account=trader), ApiKeyFactory(account=trader)
        a = SignedClient(first_key).post("/api/v1/test-orders", json={})
        assert a.status_code == 201
        assert re.match(r'^"key";r=2;t=\d+, "orders";r=1;t=\d+$', a["RateLimit"])
        # the second key of the same account shares the account's orders budget
        assert SignedClient(second_key).post("/api/v1/test-orders", json={}).status_code == 201
        refused = SignedClient(second_key).post("/api/v1/test-orders", json={})
        assert refused.status_code == 429 and refused.json()["policy"] == "orders"
        assert 1 <= int(refused["Retry-After"]) <= 10
        # another account is unaffected
        assert SignedClient(ApiKeyFactory(account=other_trader)).post("/api/v1/test-orders", json={}).status_code == 201


def test_transport_agnostic_orders_consume(limits, trader):
    ratelimit.order_submission_consume(trader.pk)
    ratelimit.order_submission_consume(trader.pk)
    with pytest.raises(errors.RateLimited) as refused:
        ratelimit.order_submission_consume(trader.pk)
    assert refused.value.extra["policy"] == "orders" and refused.value.wait >= 1


@pytest.mark.parametrize("raw", ["12", "a/b", "0/10", "10/0", "1/2/3"])
def test_bad_rate_settings_are_refused(raw):
    with pytest.raises(ValueError):
        ratelimit.parse_rate("key", raw)


def test_window_edge_is_not_mistaken_for_a_store_failure(monkeypatch):
    # At the window's last second django-ratelimit can report time_left -1 for a healthy count.
    monkeypatch.setattr(ratelimit, "_uses_redis_cache", lambda: False)  # django-ratelimit's answers, as read
    monkeypatch.setattr(ratelimit, "get_usage", lambda *a, **k: {"count": 3, "limit": 1200, "should_limit": False,
                                                                  "time_left": -1})
    usage = ratelimit.hit("key", "k1")
    assert usage.count == 3 and usage.reset == 0 and not usage.exceeded


def test_unreachable_store_refuses_with_503(monkeypatch):
    monkeypatch.setattr(ratelimit, "_uses_redis_cache", lambda: False)
    monkeypatch.setattr(ratelimit, "get_usage", lambda *a, **k: {"count": 0, "limit": 0, "should_limit": True,
                                                                  "time_left": -1})
    with pytest.raises(errors.ServiceUnavailable):
        ratelimit.hit("key", "k1")

    def broken(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(ratelimit, "get_usage", broken)
    with pytest.raises(errors.ServiceUnavailable):
        ratelimit.consume("key", "k1")


def test_unreachable_redis_refuses_with_503(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(ratelimit, "_uses_redis_cache", lambda: True)
    monkeypatch.setattr(ratelimit, "_redis_counts", down)
    with pytest.raises(errors.ServiceUnavailable):
        ratelimit.consume("key", "k1")

"""Counting a rate-limit budget in Redis is one round trip (a script), on the same keys and
windows as django-ratelimit's own counting, so the two agree on every count."""
import pytest
from django.conf import settings
from django_ratelimit.core import _get_window, _make_cache_key, get_usage

from exchange import ratelimit


def test_window_keys_are_django_ratelimits():
    pol = ratelimit.Policy("key", 1200, 60)
    for value in ("bk_abc", "42", "198.51.100.7"):
        window = _get_window(value, 60)
        assert ratelimit._window_key("bourse:key", pol, value) == (
            _make_cache_key("bourse:key", window, (1200, 60), value, None), window)


@pytest.mark.skipif(not settings.REDIS_URL, reason="the one-round-trip count is Redis's")
def test_one_round_trip_and_the_same_count_as_django_ratelimit(monkeypatch):
    import redis.connection

    commands = []
    original = redis.connection.AbstractConnection.send_command
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_command",
                        lambda self, *a, **k: commands.append(a[0]) or original(self, *a, **k))
    ratelimit.hit(ratelimit.ORDERS, 7)  # loads the script once
    commands.clear()
    usage = ratelimit.hit(ratelimit.ORDERS, 7)
    assert usage.count == 2 and commands == ["EVALSHA"]
    pol = ratelimit.policy(ratelimit.ORDERS)
    theirs = get_usage(None, group="bourse:orders", key=lambda group, request: "7", rate=(pol.quota, pol.window),
                       increment=True)
    assert theirs["count"] == 3
    assert ratelimit.hit(ratelimit.ORDERS, 7, increment=False).count == 3


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis client is Redis's")
def test_one_client_per_process_whatever_the_requests_context(monkeypatch):
    """The REST pool runs each request in a fresh copy of the context, where Django's cache
    handler would build a new cache and Redis client every time."""
    import contextvars

    import redis

    ratelimit.hit(ratelimit.ORDERS, 8)
    built = []
    original = redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    for _ in range(20):
        contextvars.Context().run(ratelimit.hit, ratelimit.ORDERS, 8)
    assert built == []


@pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's script cache")
def test_a_flushed_script_cache_is_refilled():
    """A restarted Redis has forgotten the scripts: the count (and the authentication gate)
    loads them again instead of failing."""
    from apikeys import gate

    _, client = ratelimit.redis_store()
    ratelimit.hit(ratelimit.ORDERS, 9)
    client.script_flush()
    assert ratelimit.hit(ratelimit.ORDERS, 9).count == 2
    client.script_flush()
    outcome = gate.run(source_ip="198.51.100.9", mode="claim", key_id="bk_x", nonce="n-flush", timestamp_ms=1,
                       now_ms=1, budgets=((ratelimit.ORDERS, "9"),))
    assert outcome.outcome == gate.ACCEPTED and outcome.usages[0].count == 3

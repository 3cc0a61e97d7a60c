"""The hot path's Redis commands on per-thread connections (exchange/redisdirect.py): the same
replies and errors as redis-py's client, the connection kept in step after an error reply,
a dropped connection replaced, one connection per thread and per process."""
import os
import socket
import threading

import pytest
import redis
from django.conf import settings
from redis.exceptions import ConnectionError, NoScriptError, ResponseError

from exchange import ratelimit
from exchange.errors import ServiceUnavailable
from exchange.redisdirect import DirectRedis

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="Redis's")

SCRIPT = "return {redis.call('INCR', KEYS[1]), ARGV[1]}"


@pytest.fixture
def client():
    made = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0)
    yield made
    made.delete("direct:n")
    made.close()


def test_the_same_replies_as_the_client(client):
    direct = DirectRedis(client)
    sha = client.script_load(SCRIPT)
    assert direct.call("EVALSHA", sha, 1, "direct:n", "x") == [1, b"x"]
    assert client.evalsha(sha, 1, "direct:n", "x") == [2, b"x"]
    assert direct.call("PUBLISH", "direct:nobody", "m") == client.publish("direct:nobody", "m") == 0
    assert direct.pipeline([("INCR", "direct:n"), ("GET", "direct:n")]) == [3, b"3"]


def test_an_error_reply_raises_and_the_connection_stays_in_step(client):
    direct = DirectRedis(client)
    with pytest.raises(NoScriptError):
        direct.call("EVALSHA", "0" * 40, 1, "direct:n")
    connection = direct._connection()
    with pytest.raises(ResponseError):  # the error in the middle; the reply after it read too
        direct.pipeline([("INCR", "direct:n"), ("HGET", "direct:n", "f"), ("INCR", "direct:n")])
    assert direct.call("GET", "direct:n") == b"2"
    assert direct._connection() is connection


def test_a_dropped_connection_is_replaced(client):
    direct = DirectRedis(client)
    direct.call("INCR", "direct:n")
    mine = direct.call("CLIENT", "ID")
    client.client_kill_filter(_id=mine)  # what a restarted server or an idle timeout does
    assert direct.call("INCR", "direct:n") == 2
    assert direct.call("CLIENT", "ID") != mine


def test_one_connection_per_thread_and_per_process(client, monkeypatch):
    direct = DirectRedis(client)
    ids = []
    ids.append(direct.call("CLIENT", "ID"))
    ids.append(direct.call("CLIENT", "ID"))
    other = threading.Thread(target=lambda: ids.append(direct.call("CLIENT", "ID")))
    other.start()
    other.join()
    assert ids[0] == ids[1] != ids[2]
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # a forked child never writes on its parent's socket
    assert direct.call("CLIENT", "ID") not in ids


def test_an_unreachable_server_raises_after_one_retry(monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    connects = []
    original = redis.connection.Connection._connect
    monkeypatch.setattr(redis.connection.Connection, "_connect",
                        lambda self: connects.append(1) or original(self))
    with pytest.raises(ConnectionError):
        DirectRedis(dead).call("PING")
    assert len(connects) == 2  # not the client's ten retries with back-off: the caller answers at once
    # Counting a budget on it refuses (503), never runs unlimited.
    cache, _ = ratelimit.redis_store()
    monkeypatch.setattr(ratelimit, "_store", (os.getpid(), cache, dead, DirectRedis(dead)))
    with pytest.raises(ServiceUnavailable):
        ratelimit.hit(ratelimit.ORDERS, 11)


def test_a_server_that_never_answers_is_refused_not_waited_on(settings):
    """A Redis that accepts connections and never answers (hung, or a black-holed address
    behind a proxy): the rate-limit store's timeouts (settings.CACHES) turn it into 503."""
    from django.core.cache import caches

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshakes; nothing ever reads or answers
    host, port = silent.getsockname()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://{host}:{port}/0"}}
    ratelimit.forget_store()
    outcome = []

    def count():
        try:
            ratelimit.hit(ratelimit.ORDERS, 12)
        except ServiceUnavailable as refused:
            outcome.append(refused)

    _, client = ratelimit.redis_store()
    timeouts = client.connection_pool.connection_kwargs
    assert (timeouts["socket_connect_timeout"], timeouts["socket_timeout"]) == (1, 1)  # redis-py's default: 5 s each
    try:
        caller = threading.Thread(target=count, daemon=True)
        caller.start()
        caller.join(timeout=15)  # 1 s per attempt, two attempts
        assert not caller.is_alive() and len(outcome) == 1
    finally:
        silent.close()
        caches.close_all()
        ratelimit.forget_store()

"""The embedded cache: atomic add/incr across processes, expiry, clear."""
import multiprocessing
import time

import pytest

from exchange.sqlitecache import SQLiteCache


@pytest.fixture
def cache(tmp_path):
    return SQLiteCache(str(tmp_path / "c.sqlite3"), {})


def test_get_set_add_delete_expire(cache):
    assert cache.get("a") is None
    cache.set("a", {"x": 1})
    assert cache.get("a") == {"x": 1}
    assert cache.add("a", 2) is False
    assert cache.add("b", 2, timeout=0.05) is True
    time.sleep(0.1)
    assert cache.get("b") is None and cache.add("b", 3) is True
    assert cache.delete("a") is True and cache.get("a") is None
    cache.clear()
    assert cache.get("b") is None


def test_incr_requires_existing_key(cache):
    with pytest.raises(ValueError):
        cache.incr("missing")
    cache.add("n", 1)
    assert cache.incr("n") == 2 and cache.incr("n", 5) == 7


def _hammer(path, rounds, queue):
    cache = SQLiteCache(path, {})
    wins = 0
    for i in range(rounds):
        cache.add("counter", 0, timeout=60)
        cache.incr("counter")
        wins += cache.add(f"nonce-{i}", 1, timeout=60)
    queue.put(wins)


def test_add_and_incr_are_atomic_across_processes(tmp_path):
    # given four processes incrementing one counter and racing for the same nonces
    path, rounds, workers = str(tmp_path / "shared.sqlite3"), 200, 4
    queue = multiprocessing.get_context("fork").Queue()
    procs = [multiprocessing.get_context("fork").Process(target=_hammer, args=(path, rounds, queue)) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    wins = sum(queue.get(timeout=5) for _ in procs)
    # then no increment was lost and each nonce was won exactly once
    assert SQLiteCache(path, {}).get("counter") == rounds * workers
    assert wins == rounds

"""What the processes' signals travel over: Redis pub/sub with ``REDIS_URL``, local datagram
sockets in the data directory without it (the embedded mode).

One Redis client per process for every publisher (key-state events, order verdicts, outbox
announcements), made on first use and again in a forked child (a pool's
sockets belong to the process that opened them). The signals themselves — what they carry,
who listens — live with their owners (``apikeys.events``, ``trading.notify``,
``trading.outbox.signal``).
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from .redisdirect import DirectRedis

_client: tuple[int, Any, DirectRedis] | None = None  # (pid, redis.Redis, its commands on per-thread connections)
_client_lock = threading.Lock()
_channels: dict[tuple[str, str], str] = {}


def redis_client() -> Any:
    """This process's Redis client for publishing (its connection pool is thread-safe)."""
    return _made()[1]


def redis_direct() -> DirectRedis:
    """The publisher client's commands on this thread's own connection
    (``exchange.redisdirect``): what every publish of the order path goes through."""
    return _made()[2]


def _made() -> tuple[int, Any, DirectRedis]:
    global _client
    current = _client
    if current is not None and current[0] == os.getpid():
        return current
    with _client_lock:
        if _client is None or _client[0] != os.getpid():
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)
            _client = (os.getpid(), client, DirectRedis(client))
        return _client


def redis_db_channel(prefix: str) -> str:
    """``prefix:{db}``, the pub/sub channel of ``REDIS_URL``'s database: PUBLISH reaches every
    subscriber of the server whatever database it selected, and two deployments (or test runs)
    may share a server. Worked out once per prefix and URL (every batch and order publishes)."""
    url = settings.REDIS_URL
    channel = _channels.get((prefix, url))
    if channel is None:
        import redis

        db = redis.connection.parse_url(url).get("db", 0)
        channel = _channels[(prefix, url)] = f"{prefix}:{db}"
    return channel


def run_dir() -> Path:
    """Where the local signal sockets live (``DATA_DIR/run``)."""
    path = settings.DATA_DIR / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def send_datagram(path: Path, payload: bytes) -> bool:
    """Send one datagram without blocking; False when nobody listens at ``path`` (any more)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.sendto(payload, str(path))
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False  # nobody listens there (any more)
    except OSError:
        return True  # receiver busy (or its queue full): it re-checks on its own anyway
    finally:
        sock.close()

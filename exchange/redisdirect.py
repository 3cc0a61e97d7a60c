"""The hot path's Redis commands on one connection per thread, without redis-py's client layer.

Every signed request runs one script (``apikeys.gate``) and every placement publishes its
outbox announcement. Through ``redis.Redis`` each command took a connection from the pool and
gave it back, went through the client's retry wrapper, its deprecation-argument wrappers and
redis-py 8's observability recorder: ~110 µs of CPU per command against ~45 µs for the same
command sent on a connection directly (``bench/order_path.md``, "Redis commands").

``DirectRedis`` keeps one ``redis.connection.Connection`` per thread, made with the client's
own connection settings (URL, database, credentials, TLS, timeouts, protocol and parser: the
same bytes on the wire and the same replies as the client's), and sends a command or several
pipelined on it. What stays the client's:

- errors: a Redis error reply raises ``ResponseError`` (``NoScriptError`` for a forgotten
  script) and leaves the connection usable; a connection that fails (server restarted, idle
  connection dropped, timeout) is closed and the command is sent once more on a new one, as the
  client's default retry does; if that fails too, ``ConnectionError``/``TimeoutError`` reach the
  caller, which refuses (``exchange.ratelimit``) or falls back (the publishers);
- a forked child never writes on its parent's socket: a connection belongs to the process and
  the thread that made it.

The pool threads of a REST process live as long as the process, so their connections do too
(one per request thread, what the pool held anyway under load).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError, ResponseError, TimeoutError

_RETRIED = (ConnectionError, TimeoutError, OSError)


class DirectRedis:
    """Commands on a per-thread connection with ``client``'s settings (module docstring)."""

    def __init__(self, client: Any):
        pool = client.connection_pool
        self._make = lambda: pool.connection_class(**pool.connection_kwargs)
        self._local = threading.local()

    def _connection(self) -> Any:
        mine = getattr(self._local, "connection", None)
        if mine is None or mine[0] != os.getpid():
            mine = self._local.connection = (os.getpid(), self._make())
        return mine[1]

    def call(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write and return their replies, in order. The first error
        reply is raised once every reply has been read (the connection stays in step)."""
        connection = self._connection()
        try:
            return _exchange(connection, commands)
        except _RETRIED:
            connection.disconnect()
            return _exchange(connection, commands)  # connects again


def _exchange(connection: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    if len(commands) == 1:
        connection.send_command(*commands[0])
    else:
        connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    error: Exception | None = None
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except ResponseError as exc:  # an error reply: the next replies follow it
            replies.append(exc)
            error = error or exc
    if error is not None:
        raise error
    return replies

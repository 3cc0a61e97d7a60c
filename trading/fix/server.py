"""The FIX 4.4 acceptor: one asyncio task per TCP connection, one live session per API key.

Threads: the event loop owns the sockets and all session state (``session.Session``);
Django work (the logon check, order services, store reads) runs on a small thread pool
(``Gateway.call``), each session's application messages one at a time and in sequence
order, so a cancel never overtakes the order it cancels. Execution reports come from the
outbox the engine writes in each batch (``reader.OutboxTail``).
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connections

from apikeys.live import LiveSessions
from exchange import heartbeat, metrics

from . import store
from .reader import OutboxTail
from .session import Session


class Gateway:
    def __init__(self, host: str, port: int, *, workers: int = 8, pipeline: int = 1):
        self.host, self.port = host, port
        self.pipeline = max(1, pipeline)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fix-db")
        self.store = store.StoreWriter()
        self.live_keys: dict[str, Session] = {}
        self.by_account: dict[int, set[Session]] = {}
        self.sessions: set[Session] = set()
        self.tail = OutboxTail(self)
        self.server: asyncio.Server | None = None
        self.tail_task: asyncio.Task | None = None
        self.heartbeat_task: asyncio.Task | None = None
        self.live: LiveSessions | None = None  # sessions follow their key (created on the loop)

    async def call(self, fn, *args, **kwargs):
        """Run Django code on the pool (a thread keeps its connection between calls)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(_db_call, fn, *args, **kwargs))

    def register(self, session: Session) -> None:
        self.by_account.setdefault(session.verified_account.pk, set()).add(session)
        self.tail.wake.set()
        metrics.FIX_SESSIONS.set(sum(map(len, self.by_account.values())))

    def unregister(self, session: Session) -> None:
        key_id, account_id = session.verified_key.key_id, session.verified_account.pk
        if self.live_keys.get(key_id) is session:
            del self.live_keys[key_id]
        sessions = self.by_account.get(account_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.by_account[account_id]
        metrics.FIX_SESSIONS.set(sum(map(len, self.by_account.values())))

    async def _connection(self, reader, writer) -> None:
        session = Session(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def start(self) -> None:
        self.live = LiveSessions(asyncio.get_running_loop(), self.call)
        self.server = await asyncio.start_server(self._connection, self.host, self.port, limit=1 << 20)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tail_task = asyncio.create_task(self.tail.run())
        self.heartbeat_task = asyncio.create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        """Readiness: this gateway is up and its event loop turns (``exchange.heartbeat``)."""
        beater = heartbeat.Beater("fix", every=0)  # paced by the sleep below
        while True:
            details = {"address": f"{self.host}:{self.port}", "sessions": sum(map(len, self.by_account.values()))}
            await self.call(beater.maybe, functools.partial(dict, details))
            await asyncio.sleep(settings.BOURSE_HEARTBEAT_S)

    async def stop(self) -> None:
        """Log every session out, flush the store, stop."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            if session.logged_on and not session.logout_sent:
                session.logout_sent = True
                session.send("5", [(58, "Gateway shutting down.")])
            session.reader.feed_eof()
        for _ in range(50):
            if not self.sessions:
                break
            await asyncio.sleep(0.1)
        if self.live is not None:
            self.live.close()
        if self.tail_task is not None:
            self.tail_task.cancel()
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        await self.call(self.store.flush)
        self.tail.stop()
        self.pool.submit(_close_connections).result(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _db_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:
        close_old_connections()  # a broken connection is replaced on this thread's next call
        raise


def _close_connections():
    connections.close_all()

"""Live sessions follow their key: the registry a long-lived transport (a WebSocket process,
the FIX gateway) keeps of the sessions each key authenticated, and ends them when the key
may no longer be used.

A session is ended, within a second, when a key-state event (``apikeys.events``) names its
key and re-reading the key gives a refusal (``verifier.standing_refusal``: revoked,
expired, owner deactivated, the session's address outside the allowlist, or the scope the
session needs removed); when the key's ``expires_at`` passes (a timer per key, re-armed
when the expiry changes); and, for an event lost in transit, at the next periodic re-check
(``BOURSE_KEY_RECHECK_S``). The transport decides how a session ends (a WebSocket close
code, a FIX Logout); it must accept and deliver nothing for the session once ``end`` is
called.

Everything here runs on the transport's asyncio event loop except the event callback, which
only hands over to it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from django.utils import timezone

from exchange import errors

from . import events, verifier

log = logging.getLogger("bourse.auth")


class LiveSession(Protocol):
    key_id: str
    source_ip: str | None
    required_scope: str

    async def end_for_key(self, error: errors.BourseError) -> None:
        """Stop accepting and delivering at once, tell the client why, close."""


class LiveSessions:
    """Sessions by key, on one event loop. ``run_sync(fn, *args)`` runs Django code off the
    loop (``database_sync_to_async`` for Channels, the gateway's pool for FIX)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run_sync: Callable[..., Awaitable[Any]]):
        self.loop = loop
        self.run_sync = run_sync
        self.by_key: dict[str, set[LiveSession]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self._pending: set[str] | None = None  # keys to re-read at the next check
        self._checking = False
        self._subscription: events.Subscription | None = None
        self._tasks: set[asyncio.Task] = set()

    # -- registry ------------------------------------------------------------------------------
    def add(self, session: LiveSession, key) -> None:
        """Register a session its key just authenticated (``key`` as the verifier returned it).
        The key is re-read once more: a change committed between the verification and now
        was announced before this session could hear it."""
        self.by_key.setdefault(session.key_id, set()).add(session)
        self._arm_expiry(session.key_id, key.expires_at)
        if self._subscription is None:
            self._subscription = events.subscribe(self._on_event)
        self._request({session.key_id})

    def discard(self, session: LiveSession) -> None:
        sessions = self.by_key.get(session.key_id)
        if sessions is None:
            return
        sessions.discard(session)
        if not sessions:
            del self.by_key[session.key_id]
            timer = self.timers.pop(session.key_id, None)
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    # -- events --------------------------------------------------------------------------------
    def _on_event(self, event: events.KeyEvent) -> None:
        """On the listener thread: hand over to the loop."""
        try:
            self.loop.call_soon_threadsafe(self._request, None if event.kind == events.RECHECK else set(event.key_ids))
        except RuntimeError:
            pass  # the loop is closed: the process is stopping

    def _request(self, key_ids: set[str] | None) -> None:
        """Re-read ``key_ids`` (None: every key held) soon; requests made meanwhile coalesce."""
        wanted = set(self.by_key) if key_ids is None else key_ids & set(self.by_key)
        if not wanted:
            return
        self._pending = (self._pending or set()) | wanted
        if not self._checking:
            self._checking = True
            self._spawn(self._check())

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self) -> None:
        try:
            while self._pending:
                key_ids, self._pending = self._pending, None
                try:
                    keys = await self.run_sync(verifier.keys_standing, key_ids)
                except Exception:
                    log.exception("could not re-read keys of live sessions; retrying at the next re-check")
                    continue
                for key_id in key_ids:
                    self._apply(key_id, keys.get(key_id))
        finally:
            self._checking = False

    def _apply(self, key_id: str, key) -> None:
        sessions = list(self.by_key.get(key_id, ()))
        if not sessions:
            return
        if key is not None:
            self._arm_expiry(key_id, key.expires_at)
        for session in sessions:
            if key is None:
                refusal: errors.BourseError | None = errors.KeyRevoked(f"API key {key_id} no longer exists.")
            else:
                refusal = verifier.standing_refusal(key, session.source_ip, session.required_scope)
            if refusal is not None:
                self.discard(session)
                log.info("ending a live session: %s", refusal.code, extra={"key_id": key_id, "source_ip": session.source_ip})
                self._spawn(session.end_for_key(refusal))

    def _arm_expiry(self, key_id: str, expires_at) -> None:
        timer = self.timers.pop(key_id, None)
        if timer is not None:
            timer.cancel()
        if expires_at is None or key_id not in self.by_key:
            return
        delay = max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.001
        self.timers[key_id] = self.loop.call_later(delay, self._request, {key_id})

"""Execution reports from the outbox: one reader per gateway process tails the ``orders`` and
``fills`` events of the accounts with a live session and hands each session its reports.

The reader wakes on the engine's verdict signal (``trading.notify``), with a slow re-check
besides, so a session sees its account's orders whichever transport entered them, and
nothing else.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from trading import notify
from trading.outbox import selectors as outbox

from . import reports

if TYPE_CHECKING:
    from collections.abc import Callable

    from .session import Session

log = logging.getLogger("bourse.fix")


class ReportHost(Protocol):
    """What the reader needs from the server: its thread pool and its live sessions."""

    by_account: dict[int, set[Session]]

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


class OutboxTail:
    """Reads the ``orders``/``fills`` outbox events of accounts with a live session.

    One engine owns a market and commits its batches one after another, so within a market
    the event ids become visible in increasing order: a floor per market is exact. A market
    that has been quiet keeps a floor that follows the highest id seen a few seconds ago
    (a batch is never in flight that long), so the query stays a short range scan.
    """

    SETTLE_S = 5.0
    POLL_S = 0.25

    def __init__(self, gateway: ReportHost):
        self.gateway = gateway
        self.floors: dict[int, int] = {}
        self.default_floor = 0
        self.high_water = 0
        self.samples: list[tuple[float, int]] = []
        self.wake = asyncio.Event()
        self.waker: notify.VerdictWaiter | None = None

    def stop(self) -> None:
        if self.waker is not None:
            self.waker.stop()

    async def run(self) -> None:
        self.default_floor = self.high_water = await self.gateway.call(outbox.latest_event_id)
        loop = asyncio.get_running_loop()
        self.waker = await self.gateway.call(
            notify.VerdictWaiter, on_signal=lambda _payload: loop.call_soon_threadsafe(self.wake.set)
        )
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self.POLL_S)
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                while await self._poll():
                    pass
            except Exception:
                log.exception("FIX outbox tail failed; retrying")
                await asyncio.sleep(0.5)

    def _batches(self, events):
        """Split the events into engine batches per (market, account), in id order.

        A batch writes its ``orders`` events (each order at most once) and then its
        ``fills``, contiguously; so an order event after a fill, or an order seen twice,
        starts the next batch. Two batches without fills may merge, which changes nothing:
        each order's report depends only on its own event and its own fills.
        """
        current: dict[tuple, dict] = {}
        for event in events:
            self.floors[event["market_id"]] = max(self.floors.get(event["market_id"], 0), event["id"])
            self.high_water = max(self.high_water, event["id"])
            key = (event["market_id"], event["account_id"])
            batch = current.get(key)
            payload = event["payload"]
            if event["channel"] == "orders" and batch is not None and (
                batch["fills"] or payload["order_id"] in batch["order_ids"]
            ):
                yield key[1], batch
                batch = None
            if batch is None:
                batch = current[key] = {"orders": [], "fills": [], "order_ids": set(), "first": event["id"]}
            batch[event["channel"]].append(payload)
            if event["channel"] == "orders":
                batch["order_ids"].add(payload["order_id"])
        # the last batch of each stream is complete: a batch commits (and shows) whole
        for key, batch in sorted(current.items(), key=lambda item: item[1]["first"]):
            yield key[1], batch

    async def _poll(self) -> bool:
        """Deliver what is new. No row limit: a batch must be read whole, and the backlog
        is bounded by what the engine commits between two polls."""
        now = time.monotonic()
        accounts = list(self.gateway.by_account)
        settled = max((mark for at, mark in self.samples if now - at >= self.SETTLE_S), default=None)
        self.samples = [(at, mark) for at, mark in self.samples if now - at < self.SETTLE_S] + (
            [(now, self.high_water)] if not self.samples or self.samples[-1][1] != self.high_water else []
        )
        if settled is not None:
            self.default_floor = max(self.default_floor, settled)
            for market_id in self.floors:
                self.floors[market_id] = max(self.floors[market_id], settled)
        if not accounts:
            top = await self.gateway.call(outbox.latest_event_id)
            self.default_floor = self.high_water = max(self.high_water, top)
            self.floors = {}
            return False
        events = await self.gateway.call(outbox.account_events_after, accounts, dict(self.floors), self.default_floor)
        for account_id, batch in self._batches(events):
            for session in list(self.gateway.by_account.get(account_id, ())):
                if batch["first"] <= session.min_event_id or session.closing:
                    continue
                try:
                    session.send_reports(reports.batch_reports(batch["orders"], batch["fills"], account_id=account_id,
                                                               cancel_ids=session.cancel_ids, acked=session.acked,
                                                               since=session.logon_at))
                except Exception:
                    log.exception("FIX execution reports failed", extra={"key_id": session.verified_key.key_id})
        return False

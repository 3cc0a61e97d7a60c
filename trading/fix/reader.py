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
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from trading import notify, selectors
from trading.outbox import selectors as outbox

from . import reports

if TYPE_CHECKING:
    from collections.abc import Callable

    from .session import Session

log = logging.getLogger("bourse.fix")


def _prior_notional(fills: list[dict], history: dict) -> dict[str, Decimal]:
    """Order id -> exact notional of its fills before its first fill in ``fills``."""
    first: dict[int, int] = {}
    for fill in fills:
        order_id, fill_id = int(fill["order_id"]), int(fill["fill_id"])
        first[order_id] = min(first.get(order_id, fill_id), fill_id)
    return {
        str(order_id): sum((notional for fid, notional in history.get(order_id, ()) if fid < fill_id), Decimal(0))
        for order_id, fill_id in first.items()
    }


class ReportHost(Protocol):
    """What the reader needs from the server: its thread pool and its live sessions."""

    by_account: dict[int, set[Session]]

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


class OutboxTail:
    """Reads the ``orders``/``fills`` outbox events of accounts with a live session.

    One engine owns a market and commits its batches one after another, so within a market
    the event ids become visible in increasing order: a floor per market (the highest id
    read) is exact, however long a batch takes to commit. Floors only ever move on events of
    their own market: raising a quiet market's floor to ids other markets reached would skip
    a batch of it still in flight (a slow commit), so none is. The query stays short anyway:
    each market is one range of the (account, market, id) index.
    """

    POLL_S = 0.25
    MARKETS_EVERY_S = 1.0  # how often markets created since are added to the floors

    def __init__(self, gateway: ReportHost):
        self.gateway = gateway
        self.floors: dict[int, int] = {}
        self.start_floor = 0  # the top of the outbox when the reader started
        self.high_water = 0
        self.markets_read_at = 0.0
        self.wake = asyncio.Event()
        self.waker: notify.VerdictWaiter | None = None

    def stop(self) -> None:
        if self.waker is not None:
            self.waker.stop()

    async def run(self) -> None:
        self.start_floor = self.high_water = await self.gateway.call(outbox.latest_event_id)
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
        if not self.gateway.by_account:
            # Nobody to report to: move every floor to the top, read BEFORE looking at the
            # sessions; a session that logs on after that look starts at a later top itself.
            top = await self.gateway.call(outbox.latest_event_id)
            if not self.gateway.by_account:
                self.start_floor = self.high_water = max(self.high_water, top)
                self.floors = dict.fromkeys(self.floors, self.start_floor)
                return False
        accounts = list(self.gateway.by_account)
        if now - self.markets_read_at > self.MARKETS_EVERY_S:
            self.markets_read_at = now
            for market_id in await self.gateway.call(outbox.market_ids):
                # a market first seen now has no event this reader already passed
                self.floors.setdefault(market_id, self.start_floor)
        events = await self.gateway.call(outbox.account_events_after, accounts, dict(self.floors))
        batches = list(self._batches(events))
        # Exact notional each order had filled before its fills in each batch (AvgPx).
        filled = {int(fill["order_id"]) for _, batch in batches for fill in batch["fills"]}
        history = await self.gateway.call(selectors.fill_notionals, filled) if filled else {}
        for account_id, batch in batches:
            batch_prior = _prior_notional(batch["fills"], history)
            for session in list(self.gateway.by_account.get(account_id, ())):
                if batch["first"] <= session.min_event_id or session.closing:
                    continue
                try:
                    session.deliver_reports(reports.batch_reports(batch["orders"], batch["fills"], account_id=account_id,
                                                               cancel_ids=session.cancel_ids, acked=session.acked,
                                                               since=session.logon_at, prior_notional=batch_prior,
                                                               replace_ids=session.replace_ids))
                except Exception:
                    log.exception("FIX execution reports failed", extra={"key_id": session.verified_key.key_id})
        return False

"""The order book of one market: integer ticks and lots, price-time priority.

Data layout (chosen after profiling the replay workload, see bench/engine.md):

* A side is a dict ``key -> level`` plus a binary heap of the keys.  The key
  is the price for asks and minus the price for bids, so "best" is always the
  smallest key and one matching loop serves both sides.  The heap uses lazy
  deletion: when a level empties we only pop it if it is on top, and stale
  keys are skipped when they surface.  ``heap[0]`` is therefore always a live
  level (or the side is empty), which is all the hot path looks at.
* A level is a list ``[total, count, queue, price]``.  ``queue`` is a deque of
  order records in time priority.  Cancels are lazy too: the record's
  remaining is set to 0 and left in the deque; matching pops dead records
  when it meets them, and a level that accumulates too many is compacted.
  That keeps cancel O(1) without a linked list.
* An order record is a list ``[order_id, account, side, price, remaining,
  size, expire_at]``.  Lists, not objects: creating and indexing them is the cheapest
  thing CPython offers.  Records do not point back at their level, so no
  reference cycles are created and the cyclic GC has nothing to collect.

The hot paths index these lists with literal integers; the layouts above are
the single source of truth for what each index means.

Stop orders wait outside the levels: ``_stops`` maps an id to ``[command,
arrival]`` and one heap per side holds ``(key, arrival, id)`` with key the stop
price for buys and minus it for sells, so the stops a trade price reaches are
popped from the top.  Good-till-date orders (resting or untriggered) have an
entry ``(expire_at, id)`` in ``_expiry``.  Both heaps delete lazily: an entry
whose order is gone, or whose arrival/expiry no longer matches, is skipped.
None of this costs the hot path anything while no stops or expiries exist.
"""

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from heapq import heapify, heappop, heappush, nsmallest
from typing import Any, NoReturn

from .messages import (
    BUY,
    CANCEL_BOTH,
    CANCEL_BUDGET,
    CANCEL_EXPIRED,
    CANCEL_FOK,
    CANCEL_IOC,
    CANCEL_NEWEST,
    CANCEL_NO_LIQUIDITY,
    CANCEL_OLDEST,
    CANCEL_STP,
    CANCEL_USER,
    FOK,
    GTC,
    LIMIT,
    MARKET,
    REJECT_DUPLICATE,
    REJECT_INVALID,
    REJECT_POST_ONLY,
    REJECT_PRICE,
    REJECT_QUANTITY,
    REJECT_UNKNOWN,
    SELL,
    STP_MODES,
    TIFS,
    Accepted,
    Amend,
    Amended,
    Cancel,
    Cancelled,
    Command,
    Event,
    Expire,
    LevelUpdate,
    NewOrder,
    Reduce,
    Reduced,
    Rejected,
    Rested,
    RestingOrder,
    Trade,
    Triggered,
    Untriggered,
)

_tn = tuple.__new__

# The list layouts described above.  Their items are heterogeneous (ids, accounts,
# ints, a deque), so they are typed as plain lists.
_Order = list[Any]  # [order_id, account, side, price, remaining, size, expire_at]
_Stop = list[Any]  # [NewOrder, arrival]
_Level = list[Any]  # [total, count, deque of _Order, price]
_Levels = dict[int, _Level]  # key (price or -price) -> level

# Key bound for market orders: larger than any key, so every level crosses.
# Limit prices must stay below it (they are rejected otherwise).
_NO_LIMIT = 1 << 62
# Remaining size of a budget-only market buy: it is limited by its budget alone.
_UNBOUNDED = 1 << 62


class InvariantError(AssertionError):
    """Raised by ``OrderBook.check_invariants`` when the book is inconsistent."""


class OrderBook:
    """One market's order book.  Feed it commands with ``process``.

    Not thread-safe: one book belongs to one matching thread/process.
    """

    __slots__ = (
        "sequence", "clock", "_orders", "_bids", "_asks", "_bid_heap", "_ask_heap",
        "_stops", "_buy_stops", "_sell_stops", "_arrivals", "_expiry", "_cascading",
    )

    def __init__(self, sequence: int = 0) -> None:
        #: Level-2 sequence: +1 per ``process`` call that changed any level.
        self.sequence = sequence
        self._orders: dict[int, _Order] = {}  # order_id -> order record (resting orders only)
        self._bids: _Levels = {}  # -price -> level
        self._asks: _Levels = {}  # price -> level
        self._bid_heap: list[int] = []  # keys of _bids (lazy deletion)
        self._ask_heap: list[int] = []  # keys of _asks (lazy deletion)
        #: The ``Expire`` clock: the latest ``now`` seen (never goes back).
        self.clock = 0
        self._stops: dict[int, _Stop] = {}  # untriggered stop orders
        self._buy_stops: list[tuple[int, int, int]] = []  # (stop, arrival, id)
        self._sell_stops: list[tuple[int, int, int]] = []  # (-stop, arrival, id)
        self._arrivals = 0  # arrival counter of stop orders (their trigger priority)
        self._expiry: list[tuple[int, int]] = []  # (expire_at, id) of GTD orders
        self._cascading = False  # inside a trigger cascade: the outer loop merges events

    # -- construction -------------------------------------------------------

    @classmethod
    def from_resting(
        cls, resting_orders: Iterable[Sequence[Any]], sequence: int = 0, stops: Iterable[NewOrder] = (), clock: int = 0
    ) -> "OrderBook":
        """Build a book from resting orders in time priority (see ``restore``)."""
        book = cls()
        book.restore(resting_orders, sequence, stops, clock)
        return book

    def restore(
        self, resting_orders: Iterable[Sequence[Any]], sequence: int = 0, stops: Iterable[NewOrder] = (), clock: int = 0
    ) -> None:
        """Replace the whole book with ``resting_orders`` and set ``sequence``.

        ``resting_orders`` is an iterable of ``RestingOrder`` (or any tuple
        ``(order_id, account, side, price, remaining[, size[, expire_at]])``) in
        time priority: within a price level, earlier means matched first.
        ``stops`` are the untriggered stop orders as their ``NewOrder`` commands
        (``stop_orders()``), in trigger priority; ``clock`` the ``Expire`` clock.
        No events are produced (an order already expired by ``clock`` is
        restored; the next ``Expire`` cancels it).  Raises ``ValueError`` on a
        malformed or duplicate order or if the result would be crossed; the
        book is left empty then.
        """
        self._orders = {}
        self._bids = {}
        self._asks = {}
        self._bid_heap = []
        self._ask_heap = []
        self._stops = {}
        self._buy_stops = []
        self._sell_stops = []
        self._arrivals = 0
        self._expiry = []
        self._cascading = False
        self.sequence = sequence
        self.clock = clock
        try:
            if type(clock) is not int:
                raise ValueError(f"clock must be an int, got {clock!r}")
            for item in resting_orders:
                self._restore_one(tuple(item))
            for cmd in stops:
                if type(cmd) is not NewOrder or cmd.stop_price is None:
                    raise ValueError(f"not a stop order: {cmd!r}")
                reason = self._check_new(cmd)
                if reason is not None:
                    raise ValueError(f"stop order {cmd.order_id!r}: {reason}")
                if cmd.order_id in self._orders or cmd.order_id in self._stops:
                    raise ValueError(f"duplicate order id {cmd.order_id!r}")
                self._add_stop(cmd)
            bids, asks = self._bid_heap, self._ask_heap
            if bids and asks and -bids[0] >= asks[0]:
                raise ValueError(f"restored book is crossed: bid {-bids[0]} >= ask {asks[0]}")
        except Exception:
            self.restore((), sequence)
            raise

    def _restore_one(self, item: tuple[Any, ...]) -> None:
        expire_at = None
        if len(item) == 5:
            oid, acct, side, price, rem = item
            size = rem
        else:
            if len(item) == 7:
                oid, acct, side, price, rem, size, expire_at = item
            else:
                oid, acct, side, price, rem, size = item
            if size is None:
                size = rem
        if expire_at is not None and type(expire_at) is not int:
            raise ValueError(f"order {oid!r}: expire_at must be an int or None, got {expire_at!r}")
        if side not in (BUY, SELL):
            raise ValueError(f"order {oid!r}: bad side {side!r}")
        for name, value in (("price", price), ("remaining", rem), ("size", size)):
            if type(value) is not int or value <= 0:
                raise ValueError(f"order {oid!r}: {name} must be a positive int, got {value!r}")
        if size < rem:
            raise ValueError(f"order {oid!r}: size {size} < remaining {rem}")
        if price >= _NO_LIMIT:
            raise ValueError(f"order {oid!r}: price {price} out of range")
        if oid in self._orders:
            raise ValueError(f"duplicate order id {oid!r}")
        self._add_resting(oid, acct, side, price, rem, size, expire_at)

    def _add_resting(
        self, oid: int, acct: Hashable, side: str, price: int, rem: int, size: int, expire_at: int | None = None
    ) -> int:
        """Append an order to its level (creating it); return the level total."""
        if side == BUY:
            levels, heap, key = self._bids, self._bid_heap, -price
        else:
            levels, heap, key = self._asks, self._ask_heap, price
        order = [oid, acct, side, price, rem, size, expire_at]
        self._orders[oid] = order
        if expire_at is not None:
            heappush(self._expiry, (expire_at, oid))
        level = levels.get(key)
        if level is None:
            levels[key] = [rem, 1, deque((order,)), price]
            heappush(heap, key)
            if len(heap) > (len(levels) << 1) + 64:
                _rebuild_heap(heap, levels)
            return rem
        level[2].append(order)
        level[1] += 1
        total: int = level[0] + rem
        level[0] = total
        return total

    # -- the one entry point ------------------------------------------------

    def process(self, command: Command) -> list[Event]:
        """Apply one command; return its events as a list, in order.

        ``command`` is a ``NewOrder``, ``Cancel``, ``Reduce``, ``Amend`` or
        ``Expire``.  Invalid input is answered with a ``Rejected`` event, never
        an exception (except for an object that is not a command at all:
        ``TypeError``).  Stop orders a command's trades trigger enter within
        the same call, after it, in trade order (see ``_cascade``).
        """
        # New orders are handled inline: they are most of the traffic and a
        # Python call per command is measurable (see bench/engine.md).
        if type(command) is not NewOrder:
            if type(command) is Cancel:
                return self._cancel(command[0], CANCEL_USER)
            if type(command) is Reduce:
                return self._reduce(command)
            if type(command) is Amend:
                return self._amend(command)
            if type(command) is Expire:
                return self._expire(command[0])
            raise TypeError(f"not an engine command: {command!r}")
        oid, acct, side, otype, price, size, tif, post_only, stp, budget, stop_price, expire_at = command

        # Validation.  Checks are ordered cheapest-first for the common
        # limit order; the first failing check decides the reason.
        if side == BUY:
            opp_levels = self._asks
            opp_heap = self._ask_heap
            sign = 1
        elif side == SELL:
            opp_levels = self._bids
            opp_heap = self._bid_heap
            sign = -1
        else:
            return [_tn(Rejected, (oid, REJECT_INVALID))]
        if tif not in TIFS or stp not in STP_MODES:
            return [_tn(Rejected, (oid, REJECT_INVALID))]
        if otype == LIMIT:
            if type(price) is not int or not 0 < price < _NO_LIMIT:
                return [_tn(Rejected, (oid, REJECT_PRICE))]
            if budget is not None:
                return [_tn(Rejected, (oid, REJECT_INVALID))]
            if type(size) is not int or size <= 0:
                return [_tn(Rejected, (oid, REJECT_QUANTITY))]
            lim = price * sign
        elif otype == MARKET:
            if post_only:
                return [_tn(Rejected, (oid, REJECT_INVALID))]
            if budget is not None:
                if side != BUY:
                    return [_tn(Rejected, (oid, REJECT_INVALID))]
                if type(budget) is not int or budget <= 0:
                    return [_tn(Rejected, (oid, REJECT_QUANTITY))]
                if size is None and tif == FOK:
                    return [_tn(Rejected, (oid, REJECT_INVALID))]
            if (size is not None or budget is None) and (type(size) is not int or size <= 0):
                return [_tn(Rejected, (oid, REJECT_QUANTITY))]
            price = None
            lim = _NO_LIMIT
        else:
            return [_tn(Rejected, (oid, REJECT_INVALID))]
        if stop_price is not None or expire_at is not None:
            reason = _check_stop_expiry(stop_price, expire_at, post_only)
            if reason is not None:
                return [_tn(Rejected, (oid, reason))]
        orders = self._orders
        if oid in orders or oid in self._stops:
            return [_tn(Rejected, (oid, REJECT_DUPLICATE))]

        if expire_at is not None and expire_at <= self.clock:
            # Arrived after its own expiry (the engine was away): it never trades.
            return [
                _tn(Accepted, (oid, acct, side, otype, price, size)),
                _tn(Cancelled, (oid, acct, side, price, size, CANCEL_EXPIRED)),
            ]
        if stop_price is not None:
            self._add_stop(command)
            return [
                _tn(Accepted, (oid, acct, side, otype, price, size)),
                _tn(Untriggered, (oid, acct, side, stop_price)),
            ]

        if opp_heap and opp_heap[0] <= lim:
            if post_only:
                return [_tn(Rejected, (oid, REJECT_POST_ONLY))]
            seq_before = self.sequence
            events = self._take(
                oid, acct, side, otype, price, size, tif, stp, budget, lim, opp_levels, opp_heap,
                _tn(Accepted, (oid, acct, side, otype, price, size)), size, expire_at,
            )
            if self._stops and not self._cascading:
                return self._cascade(events, seq_before)
            return events

        # Nothing to take.  Only a GTC limit order has anything left to do.
        if tif != GTC or price is None:
            if tif == FOK:
                reason = CANCEL_FOK
            else:
                reason = CANCEL_NO_LIQUIDITY if price is None else CANCEL_IOC
            return [
                _tn(Accepted, (oid, acct, side, otype, price, size)),
                _tn(Cancelled, (oid, acct, side, price, size, reason)),
            ]

        # Rest (inlined _add_resting: this is the most common command).
        order = [oid, acct, side, price, size, size, expire_at]
        orders[oid] = order
        if expire_at is not None:
            heappush(self._expiry, (expire_at, oid))
        if sign == 1:
            levels = self._bids
            heap = self._bid_heap
        else:
            levels = self._asks
            heap = self._ask_heap
        key = -lim
        level = levels.get(key)
        if level is None:
            total = size
            levels[key] = [size, 1, deque((order,)), price]
            heappush(heap, key)
            if len(heap) > (len(levels) << 1) + 64:
                _rebuild_heap(heap, levels)
        else:
            level[2].append(order)
            level[1] += 1
            total = level[0] + size
            level[0] = total
        seq = self.sequence + 1
        self.sequence = seq
        return [
            _tn(Accepted, (oid, acct, side, otype, price, size)),
            _tn(Rested, (oid, acct, side, price, size)),
            _tn(LevelUpdate, (side, price, total, seq)),
        ]

    # -- stop orders and expiry ---------------------------------------------------

    def _check_new(self, cmd: NewOrder) -> str | None:
        """The reason a NewOrder would be rejected for its own fields, or None
        (for restoring stops; ``process`` inlines the same checks)."""
        book = OrderBook()
        events = book.process(cmd._replace(stop_price=None, expire_at=None))
        if type(events[0]) is Rejected:
            return str(events[0].reason)
        return _check_stop_expiry(cmd.stop_price, cmd.expire_at, cmd.post_only)

    def _add_stop(self, cmd: NewOrder) -> None:
        arrival = self._arrivals + 1
        self._arrivals = arrival
        self._stops[cmd.order_id] = [cmd, arrival]
        self._push_stop(cmd, arrival)
        if cmd.expire_at is not None:
            heappush(self._expiry, (cmd.expire_at, cmd.order_id))

    def _push_stop(self, cmd: NewOrder, arrival: int) -> None:
        if cmd.side == BUY:
            heappush(self._buy_stops, (cmd.stop_price, arrival, cmd.order_id))
        else:
            heappush(self._sell_stops, (-cmd.stop_price, arrival, cmd.order_id))

    def _triggered_by(self, price: int) -> list[NewOrder]:
        """Take the stops a trade at ``price`` reaches, in arrival order."""
        stops = self._stops
        hit: list[tuple[int, NewOrder]] = []
        for heap, bound in ((self._buy_stops, price), (self._sell_stops, -price)):
            while heap and heap[0][0] <= bound:
                _, arrival, oid = heappop(heap)
                entry = stops.get(oid)
                if entry is not None and entry[1] == arrival:
                    del stops[oid]
                    hit.append((arrival, entry[0]))
        hit.sort(key=_first)
        return [cmd for _, cmd in hit]

    def _cascade(self, events: list[Event], seq_before: int) -> list[Event]:
        """Enter the stop orders that ``events``' trades trigger, and those their
        own trades trigger, until none is left.

        Trigger order: trade by trade, in print order; the stops one trade
        reaches in their arrival order; a triggered order's own trades queue
        their stops behind everything queued already.  Each triggered order
        is processed as its limit/market form (``Triggered`` in place of
        ``Accepted``).  The level updates of the whole call are merged into one
        batch with one sequence number, each level with its final total.
        """
        queue: deque[NewOrder] = deque()
        for e in events:
            if type(e) is Trade:
                queue.extend(self._triggered_by(e[5]))
        if not queue:
            return events
        body: list[Event] = []
        levels: dict[tuple[str, int], int] = {}
        _split(events, body, levels)
        self._cascading = True
        try:
            while queue:
                cmd = queue.popleft()
                sub = self.process(cmd._replace(stop_price=None))
                first = sub[0]
                if type(first) is Accepted:
                    sub[0] = _tn(Triggered, tuple(first))
                _split(sub, body, levels)
                for e in sub:
                    if type(e) is Trade:
                        queue.extend(self._triggered_by(e[5]))
        finally:
            self._cascading = False
        return self._merged(body, levels, seq_before)

    def _merged(self, body: list[Event], levels: dict[tuple[str, int], int], seq_before: int) -> list[Event]:
        """``body`` followed by one batch of level updates (one sequence number)."""
        if levels:
            seq = seq_before + 1
            for (side, price), total in levels.items():
                body.append(_tn(LevelUpdate, (side, price, total, seq)))
        else:
            seq = seq_before
        self.sequence = seq
        return body

    def _expire(self, now: int) -> list[Event]:
        if type(now) is not int:
            raise TypeError(f"Expire.now must be an int, got {now!r}")
        if now > self.clock:
            self.clock = now
        heap = self._expiry
        clock = self.clock
        if not heap or heap[0][0] > clock:
            return []
        seq_before = self.sequence
        body: list[Event] = []
        levels: dict[tuple[str, int], int] = {}
        while heap and heap[0][0] <= clock:
            expire_at, oid = heappop(heap)
            order = self._orders.get(oid)
            if order is not None:
                if order[6] == expire_at:
                    _split(self._cancel(oid, CANCEL_EXPIRED), body, levels)
                continue
            stop = self._stops.get(oid)
            if stop is not None and stop[0].expire_at == expire_at:
                del self._stops[oid]
                body.append(_stop_cancelled(stop[0], CANCEL_EXPIRED))
        return self._merged(body, levels, seq_before)

    @property
    def next_expiry(self) -> int | None:
        """The earliest expire_at of a live order (resting or untriggered), or None."""
        heap = self._expiry
        while heap:
            expire_at, oid = heap[0]
            order = self._orders.get(oid)
            if order is not None and order[6] == expire_at:
                return expire_at
            stop = self._stops.get(oid)
            if stop is not None and stop[0].expire_at == expire_at:
                return expire_at
            heappop(heap)
        return None

    def stop_orders(self) -> list[NewOrder]:
        """The untriggered stop orders as their commands, in trigger priority
        (``restore(..., stops=...)`` accepts them back)."""
        return [entry[0] for entry in sorted(self._stops.values(), key=_second)]

    # -- amend ------------------------------------------------------------------

    def _amend(self, cmd: Amend) -> list[Event]:
        oid, new_price, new_size, post_only, stp = cmd
        if (new_price is not None and (type(new_price) is not int or not 0 < new_price < _NO_LIMIT)) or (
            new_price is None and new_size is None
        ):
            return [_tn(Rejected, (oid, REJECT_PRICE if new_price is not None else REJECT_INVALID))]
        if new_size is not None and (type(new_size) is not int or new_size <= 0):
            return [_tn(Rejected, (oid, REJECT_QUANTITY))]
        if stp not in STP_MODES:
            return [_tn(Rejected, (oid, REJECT_INVALID))]
        order = self._orders.get(oid)
        if order is None:
            stop = self._stops.get(oid)
            if stop is None:
                return [_tn(Rejected, (oid, REJECT_UNKNOWN))]
            return self._amend_stop(stop, new_price, new_size)
        _, acct, side, price, rem, size, expire_at = order
        filled = size - rem
        price2 = price if new_price is None else new_price
        size2 = size if new_size is None else new_size
        if size2 <= filled:
            return [_tn(Rejected, (oid, REJECT_QUANTITY))]
        rem2 = size2 - filled
        if price2 == price and size2 <= size:
            # Same price, not larger: in place, priority kept.
            if size2 == size:
                return [_tn(Amended, (oid, acct, side, price, rem, size, True))]
            delta = size - size2
            order[4] = rem2
            order[5] = size2
            level = self._bids[-price] if side == BUY else self._asks[price]
            total = level[0] - delta
            level[0] = total
            seq = self.sequence + 1
            self.sequence = seq
            return [
                _tn(Amended, (oid, acct, side, price, rem2, size2, True)),
                _tn(LevelUpdate, (side, price, total, seq)),
            ]
        if side == BUY:
            opp_levels, opp_heap, lim = self._asks, self._ask_heap, price2
        else:
            opp_levels, opp_heap, lim = self._bids, self._bid_heap, -price2
        crosses = bool(opp_heap) and opp_heap[0] <= lim
        if crosses and post_only:
            return [_tn(Rejected, (oid, REJECT_POST_ONLY))]
        # Priority lost: leave the level, re-enter at the back as a GTC limit taker.
        seq_before = self.sequence
        body: list[Event] = []
        levels: dict[tuple[str, int], int] = {}
        _split(self._cancel(oid, CANCEL_USER), [], levels)
        first = _tn(Amended, (oid, acct, side, price2, rem2, size2, False))
        if crosses:
            sub = self._take(
                oid, acct, side, LIMIT, price2, rem2, GTC, stp, None, lim, opp_levels, opp_heap, first, size2, expire_at
            )
        else:
            total = self._add_resting(oid, acct, side, price2, rem2, size2, expire_at)
            sub = [first, _tn(Rested, (oid, acct, side, price2, rem2)), _tn(LevelUpdate, (side, price2, total, 0))]
        _split(sub, body, levels)
        events = self._merged(body, levels, seq_before)
        if crosses and self._stops and not self._cascading:
            return self._cascade(events, seq_before)
        return events

    def _amend_stop(self, stop: _Stop, new_price: int | None, new_size: int | None) -> list[Event]:
        cmd, arrival = stop
        if cmd.order_type != LIMIT or (new_price is None and new_size is None):
            return [_tn(Rejected, (cmd.order_id, REJECT_INVALID))]
        price2 = cmd.price if new_price is None else new_price
        size2 = cmd.size if new_size is None else new_size
        kept = price2 == cmd.price and size2 <= cmd.size
        cmd2 = cmd._replace(price=price2, size=size2)
        if kept:
            stop[0] = cmd2
        else:
            arrival = self._arrivals + 1
            self._arrivals = arrival
            self._stops[cmd.order_id] = [cmd2, arrival]
            self._push_stop(cmd2, arrival)
        return [_tn(Amended, (cmd.order_id, cmd.account, cmd.side, price2, size2, size2, kept))]

    def _take(
        self,
        oid: int,
        acct: Hashable,
        side: str,
        otype: str,
        price: int | None,
        size: int | None,
        tif: str,
        stp: str,
        budget: int | None,
        lim: int,
        opp_levels: _Levels,
        opp_heap: list[int],
        first: Event,
        total_size: int | None,
        expire_at: int | None,
    ) -> list[Event]:
        """Match an incoming order that crosses the opposite best; then rest/cancel.

        ``first`` opens the event list (``Accepted``, or ``Amended`` for an amend's
        re-entry); ``size`` is what is left to fill, ``total_size`` the order's
        total size should it rest (they differ for a partly filled amended order).
        """
        events: list[Event] = [first]
        if tif == FOK:
            assert size is not None  # process() rejects a FOK order without a size
            if not _fok_fillable(size, acct, stp, budget, lim, opp_levels, opp_heap):
                events.append(_tn(Cancelled, (oid, acct, side, price, size, CANCEL_FOK)))
                return events

        orders = self._orders
        append = events.append
        bounded = size is not None
        rem = _UNBOUNDED if size is None else size
        stop = None  # why the taker stopped before running out of size or book
        changed: list[_Level] = []  # maker-side levels whose total changed, in the order reached

        while opp_heap:
            key = opp_heap[0]
            if key > lim:
                break
            level = opp_levels[key]
            lprice = level[3]
            queue = level[2]
            before = level[0]
            while queue:
                maker = queue[0]
                mrem = maker[4]
                if not mrem:  # lazily cancelled
                    queue.popleft()
                    continue
                if maker[1] == acct:
                    if stp == CANCEL_NEWEST:
                        stop = CANCEL_STP
                        break
                    # cancel_oldest / cancel_both: the resting order goes.
                    queue.popleft()
                    del orders[maker[0]]
                    maker[4] = 0
                    level[0] -= mrem
                    level[1] -= 1
                    append(_tn(Cancelled, (maker[0], acct, maker[2], lprice, mrem, CANCEL_STP)))
                    if stp == CANCEL_BOTH:
                        stop = CANCEL_STP
                        break
                    continue
                if budget is None:
                    qty = rem if rem < mrem else mrem
                else:
                    qty = budget // lprice
                    if not qty:
                        stop = CANCEL_BUDGET
                        break
                    if rem < qty:
                        qty = rem
                    if mrem < qty:
                        qty = mrem
                    budget -= qty * lprice
                rem -= qty
                mrem -= qty
                maker[4] = mrem
                level[0] -= qty
                if not mrem:
                    queue.popleft()
                    del orders[maker[0]]
                    level[1] -= 1
                append(
                    _tn(
                        Trade,
                        (
                            oid,
                            maker[0],
                            acct,
                            maker[1],
                            side,
                            lprice,
                            qty,
                            rem if bounded else None,
                            mrem,
                        ),
                    )
                )
                if not rem:
                    break
            if level[0] != before:
                changed.append(level)
            if not level[1]:
                del opp_levels[key]
                heappop(opp_heap)
                while opp_heap and opp_heap[0] not in opp_levels:
                    heappop(opp_heap)
            elif len(queue) > (level[1] << 1) + 32:
                level[2] = deque([o for o in queue if o[4]])
            if stop is not None or not rem:
                break

        total = None  # the taker's own level total if it rested
        if rem:
            if stop is None:
                if price is None:
                    stop = CANCEL_BUDGET if budget == 0 else CANCEL_NO_LIQUIDITY
                elif tif == GTC:
                    assert total_size is not None  # a limit order always has a size
                    total = self._add_resting(oid, acct, side, price, rem, total_size, expire_at)
                    append(_tn(Rested, (oid, acct, side, price, rem)))
                else:
                    # FOK cannot get here: _fok_fillable promised a full fill.
                    stop = CANCEL_IOC
            if stop is not None:
                append(_tn(Cancelled, (oid, acct, side, price, rem if bounded else None, stop)))

        if changed or total is not None:
            seq = self.sequence + 1
            self.sequence = seq
            maker_side = SELL if side == BUY else BUY
            for level in changed:
                append(_tn(LevelUpdate, (maker_side, level[3], level[0], seq)))
            if total is not None:
                append(_tn(LevelUpdate, (side, price, total, seq)))
        return events

    # -- cancel and reduce ----------------------------------------------------

    def _cancel(self, oid: int, reason: str) -> list[Event]:
        order = self._orders.pop(oid, None)
        if order is None:
            stop = self._stops.pop(oid, None)
            if stop is not None:  # an untriggered stop order: in no level
                return [_stop_cancelled(stop[0], reason)]
            return [_tn(Rejected, (oid, REJECT_UNKNOWN))]
        _, acct, side, price, rem, _, _ = order
        order[4] = 0
        if side == BUY:
            levels = self._bids
            key = -price
        else:
            levels = self._asks
            key = price
        level = levels[key]
        total = level[0] - rem
        level[0] = total
        count = level[1] - 1
        level[1] = count
        if not count:
            del levels[key]
            heap = self._bid_heap if side == BUY else self._ask_heap
            if heap[0] == key:
                heappop(heap)
                while heap and heap[0] not in levels:
                    heappop(heap)
        elif len(level[2]) > (count << 1) + 32:
            level[2] = deque([o for o in level[2] if o[4]])
        seq = self.sequence + 1
        self.sequence = seq
        return [
            _tn(Cancelled, (oid, acct, side, price, rem, reason)),
            _tn(LevelUpdate, (side, price, total, seq)),
        ]

    def _reduce(self, cmd: Reduce) -> list[Event]:
        oid, new_size, reduce_by = cmd
        order = self._orders.get(oid)
        if order is None:
            return [_tn(Rejected, (oid, REJECT_UNKNOWN))]
        _, acct, side, price, rem, size, _ = order
        if reduce_by is None:
            if type(new_size) is not int or new_size < 0 or new_size >= size:
                return [_tn(Rejected, (oid, REJECT_QUANTITY))]
            new_rem = new_size - (size - rem)
        elif new_size is None and type(reduce_by) is int and reduce_by > 0:
            new_rem = rem - reduce_by
        else:
            return [_tn(Rejected, (oid, REJECT_QUANTITY))]
        if new_rem <= 0:
            return self._cancel(oid, CANCEL_USER)
        delta = rem - new_rem
        order[4] = new_rem
        order[5] = size - delta
        level = (self._bids[-price] if side == BUY else self._asks[price])
        total = level[0] - delta
        level[0] = total
        seq = self.sequence + 1
        self.sequence = seq
        return [
            _tn(Reduced, (oid, acct, side, price, new_rem, delta)),
            _tn(LevelUpdate, (side, price, total, seq)),
        ]

    # -- read-only views -----------------------------------------------------

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    @property
    def best_bid(self) -> int | None:
        """Best bid price in ticks, or None."""
        return -self._bid_heap[0] if self._bid_heap else None

    @property
    def best_ask(self) -> int | None:
        """Best ask price in ticks, or None."""
        return self._ask_heap[0] if self._ask_heap else None

    def get_order(self, order_id: int) -> RestingOrder | None:
        """The resting order ``order_id`` as a ``RestingOrder``, or None."""
        o = self._orders.get(order_id)
        return None if o is None else RestingOrder(o[0], o[1], o[2], o[3], o[4], o[5], o[6])

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Level-2 depth: ``(bids, asks)``, each a list of ``(price, total_lots)``, best first.

        ``n`` limits each side to its best ``n`` levels (None: all levels).
        """
        out: list[list[tuple[int, int]]] = []
        for levels in (self._bids, self._asks):
            keys = sorted(levels) if n is None else nsmallest(n, levels)
            out.append([(levels[k][3], levels[k][0]) for k in keys])
        return out[0], out[1]

    def resting_orders(self) -> list[RestingOrder]:
        """All resting orders as ``RestingOrder``: bids best price first, then asks.

        Within a level, in time priority.  Feeding this list to ``restore``
        rebuilds an identical book.
        """
        out: list[RestingOrder] = []
        for levels in (self._bids, self._asks):
            for key in sorted(levels):
                for o in levels[key][2]:
                    if o[4]:
                        out.append(RestingOrder(o[0], o[1], o[2], o[3], o[4], o[5], o[6]))
        return out

    def snapshot(self) -> tuple[int, list[RestingOrder]]:
        """``(sequence, resting_orders())``: everything ``restore`` needs."""
        return self.sequence, self.resting_orders()

    # -- self-check ------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise ``InvariantError`` unless the book is internally consistent.

        Checks: the book is not crossed; every level's total and count equal
        the sum and number of its live orders; every level is non-empty; every
        indexed order sits, once, in the level of its side and price; every
        live queued order is indexed; remaining <= size; each heap is a valid
        heap holding every level key, with a live level on top.  O(book).
        """

        def fail(msg: str) -> NoReturn:
            raise InvariantError(msg)

        if type(self.sequence) is not int or self.sequence < 0:
            fail(f"bad sequence {self.sequence!r}")
        seen: set[int] = set()
        for side, levels, heap, sign in (
            (BUY, self._bids, self._bid_heap, -1),
            (SELL, self._asks, self._ask_heap, 1),
        ):
            for key, level in levels.items():
                total, count, queue, price = level
                if type(price) is not int or price <= 0 or key != sign * price:
                    fail(f"{side} level key {key} does not match price {price!r}")
                live: list[_Order] = [o for o in queue if o[4]]
                if not live or count != len(live):
                    fail(f"{side} level {price}: count {count} but {len(live)} live orders")
                if total != sum(o[4] for o in live):
                    fail(f"{side} level {price}: total {total} != sum of orders")
                for o in live:
                    oid = o[0]
                    if oid in seen:
                        fail(f"order {oid!r} queued twice")
                    seen.add(oid)
                    if self._orders.get(oid) is not o:
                        fail(f"live order {oid!r} in {side} {price} is not indexed")
                    if o[2] != side or o[3] != price:
                        fail(f"order {oid!r} is in the wrong level")
                    if type(o[4]) is not int or o[4] < 0 or o[4] > o[5]:
                        fail(f"order {oid!r}: remaining {o[4]!r} vs size {o[5]!r}")
            if set(levels) - set(heap):
                fail(f"{side} heap misses levels {sorted(set(levels) - set(heap))}")
            for i in range(1, len(heap)):
                if heap[(i - 1) >> 1] > heap[i]:
                    fail(f"{side} heap property broken at {i}")
            if levels and heap[0] not in levels:
                fail(f"{side} heap top {heap[0]} is not a live level")
            if levels and heap[0] != min(levels):
                fail(f"{side} heap top {heap[0]} is not the best level")
        for oid, (cmd, arrival) in self._stops.items():
            if oid in self._orders or type(cmd) is not NewOrder or cmd.order_id != oid or cmd.stop_price is None:
                fail(f"stop order {oid!r} is malformed or also resting")
            triggers = self._buy_stops if cmd.side == BUY else self._sell_stops
            key = cmd.stop_price if cmd.side == BUY else -cmd.stop_price
            if (key, arrival, oid) not in triggers:
                fail(f"stop order {oid!r} has no trigger entry")
            if cmd.expire_at is not None and (cmd.expire_at, oid) not in self._expiry:
                fail(f"stop order {oid!r} has no expiry entry")
        for o in self._orders.values():
            if o[6] is not None and (o[6], o[0]) not in self._expiry:
                fail(f"order {o[0]!r} has no expiry entry")
        if set(self._orders) != seen:
            fail(f"indexed orders not in any level: {sorted(set(self._orders) - seen)!r}")
        if self._bids and self._asks and -self._bid_heap[0] >= self._ask_heap[0]:
            fail(f"book crossed: bid {-self._bid_heap[0]} >= ask {self._ask_heap[0]}")


def _check_stop_expiry(stop_price: object, expire_at: object, post_only: object) -> str | None:
    """The reject reason for a NewOrder's stop price / expiry, or None."""
    if stop_price is not None:
        if type(stop_price) is not int or not 0 < stop_price < _NO_LIMIT:
            return REJECT_PRICE
        if post_only:
            return REJECT_INVALID
    if expire_at is not None and type(expire_at) is not int:
        return REJECT_INVALID
    return None


def _stop_cancelled(cmd: NewOrder, reason: str) -> Cancelled:
    """The ``Cancelled`` of an untriggered stop order (nothing of it ever traded)."""
    price = cmd.price if cmd.order_type == LIMIT else None
    return _tn(Cancelled, (cmd.order_id, cmd.account, cmd.side, price, cmd.size, reason))


def _split(events: list[Event], body: list[Event], levels: dict[tuple[str, int], int]) -> None:
    """Append ``events`` but level updates to ``body``; keep each level's latest total in
    ``levels`` (first-touched order)."""
    for e in events:
        if type(e) is LevelUpdate:
            levels[(e[0], e[1])] = e[2]
        else:
            body.append(e)


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _second(item: list[Any]) -> int:
    return int(item[1])


def _rebuild_heap(heap: list[int], levels: _Levels) -> None:
    """Drop stale keys, in place (callers hold references to the list)."""
    heap[:] = levels
    heapify(heap)


def _fok_fillable(
    need: int, acct: Hashable, stp: str, budget: int | None, lim: int, opp_levels: _Levels, opp_heap: list[int]
) -> bool:
    """Could a FOK taker fill ``need`` lots right now?  Changes nothing.

    Walks levels best first over a copy of the heap.  Counts only what the
    taker could really take: under cancel_newest / cancel_both it stops at
    its own first resting order; under cancel_oldest own orders are skipped
    (they would be cancelled and matching would go on).  A quote budget is
    spent as the real match would spend it.
    """
    heap = opp_heap[:]
    last = None
    while heap:
        key = heappop(heap)
        if key > lim:
            return False
        if key == last or key not in opp_levels:
            continue
        last = key
        level = opp_levels[key]
        lprice = level[3]
        for maker in level[2]:
            mrem = maker[4]
            if not mrem:
                continue
            if maker[1] == acct:
                if stp == CANCEL_OLDEST:
                    continue
                return False
            take = need if need < mrem else mrem
            if budget is not None:
                afford = budget // lprice
                if afford < take:
                    take = afford
                if not take:
                    return False
                budget -= take * lprice
            need -= take
            if not need:
                return True
    return False

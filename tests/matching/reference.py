"""A deliberately simple reference model of the matching semantics.

One flat list of resting orders in arrival order; every decision is a linear
scan.  No heaps, no levels, no lazy deletion, no cleverness: it is meant to
be obviously right, slow, and independent of ``matching.book``.

FOK is defined here in the most literal way: run the order against a copy of
the book and keep the result only if it filled completely.

``process`` returns the same events as ``OrderBook.process`` except the
level-2 ``LevelUpdate`` events; tests derive those from ``depth()`` before and
after the command.

Stop orders wait in their own list in trigger priority (arrival; an amend that
loses priority moves one to the end).  After a command, every trade it printed
is taken in order: the stops that price reaches leave the list (in list order)
and queue; each queued stop is then run as a plain order (``Triggered`` instead
of ``Accepted``) and its own trades queue more.  Expiry is a linear scan sorted
by (expire_at, order_id).  An amend that loses priority is: take the order out,
run its remainder as a taker, append it to the end.
"""

import copy

from matching.messages import (
    BUY,
    CANCEL_BOTH,
    CANCEL_BUDGET,
    CANCEL_EXPIRED,
    CANCEL_FOK,
    CANCEL_IOC,
    CANCEL_NEWEST,
    CANCEL_NO_LIQUIDITY,
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
    Expire,
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


def _posint(x):
    return type(x) is int and x > 0


class RefOrder:
    def __init__(self, order_id, account, side, price, remaining, size, expire_at=None):
        self.order_id = order_id
        self.account = account
        self.side = side
        self.price = price
        self.remaining = remaining
        self.size = size
        self.expire_at = expire_at


class ReferenceBook:
    def __init__(self):
        self.orders = []  # resting orders, oldest first
        self.stops = []  # untriggered stop commands (NewOrder), in trigger priority
        self.clock = 0

    # -- views ----------------------------------------------------------------

    def find(self, order_id):
        for o in self.orders:
            if o.order_id == order_id:
                return o
        return None

    def resting_orders(self):
        bids = [o for o in self.orders if o.side == BUY]
        asks = [o for o in self.orders if o.side == SELL]
        # sorted() is stable, so arrival order survives within a price.
        bids = sorted(bids, key=lambda o: -o.price)
        asks = sorted(asks, key=lambda o: o.price)
        return [
            RestingOrder(o.order_id, o.account, o.side, o.price, o.remaining, o.size, o.expire_at)
            for o in bids + asks
        ]

    def find_stop(self, order_id):
        for c in self.stops:
            if c.order_id == order_id:
                return c
        return None

    def depth(self):
        out = []
        for side, sign in ((BUY, -1), (SELL, 1)):
            totals = {}
            for o in self.orders:
                if o.side == side:
                    totals[o.price] = totals.get(o.price, 0) + o.remaining
            out.append(sorted(totals.items(), key=lambda kv: sign * kv[0]))
        return out[0], out[1]

    # -- commands -------------------------------------------------------------

    def process(self, cmd):
        if isinstance(cmd, NewOrder):
            events = self.new_order(cmd)
        elif isinstance(cmd, Cancel):
            return self.cancel(cmd.order_id, CANCEL_USER)
        elif isinstance(cmd, Reduce):
            return self.reduce(cmd)
        elif isinstance(cmd, Amend):
            events = self.amend(cmd)
        elif isinstance(cmd, Expire):
            return self.expire(cmd.now)
        else:
            raise TypeError(cmd)
        return self.run_triggers(events)

    def run_triggers(self, events):
        queue = []
        for e in events:
            if isinstance(e, Trade):
                queue += self.take_triggered(e.price)
        while queue:
            c = queue.pop(0)
            sub = self.new_order(c._replace(stop_price=None))
            assert isinstance(sub[0], Accepted)
            sub[0] = Triggered(*sub[0])
            events += sub
            for e in sub:
                if isinstance(e, Trade):
                    queue += self.take_triggered(e.price)
        return events

    def take_triggered(self, price):
        hit = [c for c in self.stops if (c.stop_price <= price if c.side == BUY else c.stop_price >= price)]
        self.stops = [c for c in self.stops if c not in hit]
        return hit

    def expire(self, now):
        self.clock = max(self.clock, now)
        due = [(o.expire_at, o.order_id) for o in self.orders if o.expire_at is not None and o.expire_at <= self.clock]
        due += [(c.expire_at, c.order_id) for c in self.stops if c.expire_at is not None and c.expire_at <= self.clock]
        events = []
        for _, order_id in sorted(due):
            events += self.cancel(order_id, CANCEL_EXPIRED)
        return events

    def amend(self, cmd):
        bad_price = cmd.price is not None and (not _posint(cmd.price) or cmd.price >= 2**62)
        if bad_price or (cmd.price is None and cmd.new_size is None):
            return [Rejected(cmd.order_id, REJECT_PRICE if bad_price else REJECT_INVALID)]
        if cmd.new_size is not None and not _posint(cmd.new_size):
            return [Rejected(cmd.order_id, REJECT_QUANTITY)]
        if cmd.stp not in STP_MODES:
            return [Rejected(cmd.order_id, REJECT_INVALID)]
        o = self.find(cmd.order_id)
        if o is None:
            c = self.find_stop(cmd.order_id)
            if c is None:
                return [Rejected(cmd.order_id, REJECT_UNKNOWN)]
            if c.order_type != LIMIT:
                return [Rejected(cmd.order_id, REJECT_INVALID)]
            price = c.price if cmd.price is None else cmd.price
            size = c.size if cmd.new_size is None else cmd.new_size
            kept = price == c.price and size <= c.size
            i = self.stops.index(c)
            if kept:
                self.stops[i] = c._replace(price=price, size=size)
            else:
                del self.stops[i]
                self.stops.append(c._replace(price=price, size=size))
            return [Amended(c.order_id, c.account, c.side, price, size, size, kept)]
        filled = o.size - o.remaining
        price = o.price if cmd.price is None else cmd.price
        size = o.size if cmd.new_size is None else cmd.new_size
        if size <= filled:
            return [Rejected(cmd.order_id, REJECT_QUANTITY)]
        if price == o.price and size <= o.size:
            o.remaining = size - filled
            o.size = size
            return [Amended(o.order_id, o.account, o.side, price, o.remaining, size, True)]
        taker = NewOrder(o.order_id, o.account, o.side, LIMIT, price, size - filled, GTC, cmd.post_only, cmd.stp)
        if cmd.post_only and self.best_maker(taker) is not None:
            return [Rejected(cmd.order_id, REJECT_POST_ONLY)]
        self.orders.remove(o)
        events = [Amended(o.order_id, o.account, o.side, price, size - filled, size, False)]
        self.match(taker, price, events, total=size, expire_at=o.expire_at)
        return events

    def cancel(self, order_id, reason):
        o = self.find(order_id)
        if o is None:
            c = self.find_stop(order_id)
            if c is not None:
                self.stops.remove(c)
                price = c.price if c.order_type == LIMIT else None
                return [Cancelled(c.order_id, c.account, c.side, price, c.size, reason)]
            return [Rejected(order_id, REJECT_UNKNOWN)]
        self.orders.remove(o)
        return [Cancelled(o.order_id, o.account, o.side, o.price, o.remaining, reason)]

    def reduce(self, cmd):
        o = self.find(cmd.order_id)
        if o is None:
            return [Rejected(cmd.order_id, REJECT_UNKNOWN)]
        if cmd.new_size is not None and cmd.reduce_by is None:
            if type(cmd.new_size) is not int or not 0 <= cmd.new_size < o.size:
                return [Rejected(cmd.order_id, REJECT_QUANTITY)]
            filled = o.size - o.remaining
            new_remaining = cmd.new_size - filled
        elif cmd.new_size is None and _posint(cmd.reduce_by):
            new_remaining = o.remaining - cmd.reduce_by
        else:
            return [Rejected(cmd.order_id, REJECT_QUANTITY)]
        if new_remaining <= 0:
            return self.cancel(cmd.order_id, CANCEL_USER)
        cut = o.remaining - new_remaining
        o.remaining = new_remaining
        o.size -= cut
        return [Reduced(o.order_id, o.account, o.side, o.price, new_remaining, cut)]

    def validate(self, c):
        if c.side not in (BUY, SELL) or c.tif not in TIFS or c.stp not in STP_MODES:
            return REJECT_INVALID
        if c.order_type == LIMIT:
            if not _posint(c.price) or c.price >= 2**62:
                return REJECT_PRICE
            if c.quote_budget is not None:
                return REJECT_INVALID
            if not _posint(c.size):
                return REJECT_QUANTITY
        elif c.order_type == MARKET:
            if c.post_only:
                return REJECT_INVALID
            if c.quote_budget is not None:
                if c.side != BUY:
                    return REJECT_INVALID
                if not _posint(c.quote_budget):
                    return REJECT_QUANTITY
                if c.size is None and c.tif == FOK:
                    return REJECT_INVALID
                if c.size is not None and not _posint(c.size):
                    return REJECT_QUANTITY
            elif not _posint(c.size):
                return REJECT_QUANTITY
        else:
            return REJECT_INVALID
        if c.stop_price is not None and (not _posint(c.stop_price) or c.stop_price >= 2**62):
            return REJECT_PRICE
        if c.stop_price is not None and c.post_only:
            return REJECT_INVALID
        if c.expire_at is not None and type(c.expire_at) is not int:
            return REJECT_INVALID
        if self.find(c.order_id) is not None or self.find_stop(c.order_id) is not None:
            return REJECT_DUPLICATE
        return None

    def makers_in_priority(self, side, limit_price=None):
        """Opposite-side orders a ``side`` taker could reach, in match order."""
        ranked = [
            o
            for o in self.orders
            if o.side != side
            and (limit_price is None or (o.price <= limit_price if side == BUY else o.price >= limit_price))
        ]
        return sorted(ranked, key=lambda o: o.price if side == BUY else -o.price)

    def best_maker(self, c):
        """The resting order the taker ``c`` would meet next, or None."""
        best = None
        for o in self.orders:
            if o.side == c.side:
                continue
            if c.order_type == LIMIT:
                if c.side == BUY and o.price > c.price:
                    continue
                if c.side == SELL and o.price < c.price:
                    continue
            if best is None or c.side == BUY and o.price < best.price or c.side == SELL and o.price > best.price:
                best = o
        return best

    def new_order(self, c):
        reason = self.validate(c)
        if reason is not None:
            return [Rejected(c.order_id, reason)]
        price = c.price if c.order_type == LIMIT else None
        if c.expire_at is not None and c.expire_at <= self.clock:
            return [
                Accepted(c.order_id, c.account, c.side, c.order_type, price, c.size),
                Cancelled(c.order_id, c.account, c.side, price, c.size, CANCEL_EXPIRED),
            ]
        if c.stop_price is not None:
            self.stops.append(c)
            return [
                Accepted(c.order_id, c.account, c.side, c.order_type, price, c.size),
                Untriggered(c.order_id, c.account, c.side, c.stop_price),
            ]
        if c.post_only and self.best_maker(c) is not None:
            return [Rejected(c.order_id, REJECT_POST_ONLY)]
        price = c.price if c.order_type == LIMIT else None
        events = [Accepted(c.order_id, c.account, c.side, c.order_type, price, c.size)]
        if c.tif == FOK:
            trial = copy.deepcopy(self)
            if trial.match(c, price, []) != 0:
                events.append(Cancelled(c.order_id, c.account, c.side, price, c.size, CANCEL_FOK))
                return events
        self.match(c, price, events)
        return events

    def match(self, c, price, events, total=None, expire_at=None):
        """Match (and rest or cancel) taker ``c``; return its unfilled lots.

        ``total``: the size it rests with (an amended order's total, filled included)."""
        if expire_at is None:
            expire_at = getattr(c, "expire_at", None)
        bounded = c.size is not None
        remaining = c.size if bounded else 10**30
        budget = c.quote_budget
        stop = None
        while remaining > 0:
            maker = self.best_maker(c)
            if maker is None:
                break
            if maker.account == c.account:
                if c.stp == CANCEL_NEWEST:
                    stop = CANCEL_STP
                    break
                self.orders.remove(maker)
                events.append(
                    Cancelled(maker.order_id, maker.account, maker.side, maker.price, maker.remaining, CANCEL_STP)
                )
                if c.stp == CANCEL_BOTH:
                    stop = CANCEL_STP
                    break
                continue
            qty = min(remaining, maker.remaining)
            if budget is not None:
                qty = min(qty, budget // maker.price)
                if qty == 0:
                    stop = CANCEL_BUDGET
                    break
                budget -= qty * maker.price
            remaining -= qty
            maker.remaining -= qty
            if maker.remaining == 0:
                self.orders.remove(maker)
            events.append(
                Trade(
                    c.order_id,
                    maker.order_id,
                    c.account,
                    maker.account,
                    c.side,
                    maker.price,
                    qty,
                    remaining if bounded else None,
                    maker.remaining,
                )
            )
        if remaining > 0:
            left = remaining if bounded else None
            if stop is None and c.order_type == MARKET:
                stop = CANCEL_BUDGET if budget == 0 else CANCEL_NO_LIQUIDITY
            if stop is None and c.tif == GTC:
                self.orders.append(
                    RefOrder(c.order_id, c.account, c.side, price, remaining, total or c.size, expire_at)
                )
                events.append(Rested(c.order_id, c.account, c.side, price, remaining))
            else:
                events.append(Cancelled(c.order_id, c.account, c.side, price, left, stop or CANCEL_IOC))
        return remaining if bounded else 0

"""A deliberately simple reference model of the matching semantics.

One flat list of resting orders in arrival order; every decision is a linear
scan.  No heaps, no levels, no lazy deletion, no cleverness: it is meant to
be obviously right, slow, and independent of ``matching.book``.

FOK is defined here in the most literal way: run the order against a copy of
the book and keep the result only if it filled completely.

``process`` returns the same events as ``OrderBook.process`` except the
level-2 ``LevelUpdate`` events; tests derive those from ``depth()`` before and
after the command.
"""

import copy

from matching.messages import (
    BUY,
    CANCEL_BOTH,
    CANCEL_BUDGET,
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
    Cancel,
    Cancelled,
    NewOrder,
    Reduce,
    Reduced,
    Rejected,
    Rested,
    RestingOrder,
    Trade,
)


def _posint(x):
    return type(x) is int and x > 0


class RefOrder:
    def __init__(self, order_id, account, side, price, remaining, size):
        self.order_id = order_id
        self.account = account
        self.side = side
        self.price = price
        self.remaining = remaining
        self.size = size


class ReferenceBook:
    def __init__(self):
        self.orders = []  # resting orders, oldest first

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
            RestingOrder(o.order_id, o.account, o.side, o.price, o.remaining, o.size) for o in bids + asks
        ]

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
            return self.new_order(cmd)
        if isinstance(cmd, Cancel):
            return self.cancel(cmd.order_id, CANCEL_USER)
        if isinstance(cmd, Reduce):
            return self.reduce(cmd)
        raise TypeError(cmd)

    def cancel(self, order_id, reason):
        o = self.find(order_id)
        if o is None:
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
        if self.find(c.order_id) is not None:
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

    def match(self, c, price, events):
        """Match (and rest or cancel) taker ``c``; return its unfilled lots."""
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
                self.orders.append(RefOrder(c.order_id, c.account, c.side, price, remaining, c.size))
                events.append(Rested(c.order_id, c.account, c.side, price, remaining))
            else:
                events.append(Cancelled(c.order_id, c.account, c.side, price, left, stop or CANCEL_IOC))
        return remaining if bounded else 0

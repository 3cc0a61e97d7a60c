"""Baseline for the engine benchmark: a straightforward sortedcontainers book.

This is the book most people would write first: an ``Order`` object per order,
one ``SortedDict`` per side mapping price to an insertion-ordered dict of the
level's orders, a dict of level totals, and named-tuple events built the usual
way.  It implements what the replay format can express (limit and market
orders, GTC / IOC / FOK, post-only, self-trade prevention cancel_newest) with
the same events as ``matching.OrderBook``, so the benchmark can check
that both produce identical event streams before comparing their speed.

Not for production use; not imported by the exchange.
"""

import os
import sys

from sortedcontainers import SortedDict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from matching.messages import (  # noqa: E402
    BUY,
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
    TIFS,
    Accepted,
    Cancel,
    Cancelled,
    LevelUpdate,
    NewOrder,
    Rejected,
    Rested,
    Trade,
)


class Order:
    __slots__ = ("order_id", "account", "side", "price", "remaining")

    def __init__(self, order_id, account, side, price, remaining):
        self.order_id = order_id
        self.account = account
        self.side = side
        self.price = price
        self.remaining = remaining


class BaselineBook:
    """Price -> {order_id: Order} per side in a SortedDict; totals in a dict."""

    def __init__(self):
        self.sides = {BUY: SortedDict(), SELL: SortedDict()}
        self.totals = {BUY: {}, SELL: {}}
        self.orders = {}
        self.sequence = 0

    def __len__(self):
        return len(self.orders)

    def best(self, side):
        levels = self.sides[side]
        if not levels:
            return None
        return levels.peekitem(-1 if side == BUY else 0)[0]

    def process(self, cmd):
        if isinstance(cmd, NewOrder):
            return self.new_order(cmd)
        if isinstance(cmd, Cancel):
            return self.cancel(cmd.order_id)
        raise TypeError(cmd)

    def cancel(self, order_id):
        order = self.orders.pop(order_id, None)
        if order is None:
            return [Rejected(order_id, REJECT_UNKNOWN)]
        level = self.sides[order.side][order.price]
        del level[order_id]
        if not level:
            del self.sides[order.side][order.price]
        total = self.totals[order.side][order.price] - order.remaining
        if total:
            self.totals[order.side][order.price] = total
        else:
            del self.totals[order.side][order.price]
        self.sequence += 1
        return [
            Cancelled(order_id, order.account, order.side, order.price, order.remaining, CANCEL_USER),
            LevelUpdate(order.side, order.price, total, self.sequence),
        ]

    def new_order(self, cmd):
        if cmd.side not in (BUY, SELL) or cmd.tif not in TIFS or cmd.stp != CANCEL_NEWEST:
            return [Rejected(cmd.order_id, REJECT_INVALID)]
        is_market = cmd.order_type == MARKET
        if not is_market and (cmd.order_type != LIMIT):
            return [Rejected(cmd.order_id, REJECT_INVALID)]
        if not is_market and cmd.price <= 0:
            return [Rejected(cmd.order_id, REJECT_PRICE)]
        if is_market and cmd.post_only or cmd.quote_budget is not None:
            return [Rejected(cmd.order_id, REJECT_INVALID)]
        if cmd.size is None or cmd.size <= 0:
            return [Rejected(cmd.order_id, REJECT_QUANTITY)]
        if cmd.order_id in self.orders:
            return [Rejected(cmd.order_id, REJECT_DUPLICATE)]

        other = SELL if cmd.side == BUY else BUY
        price = None if is_market else cmd.price

        def crosses(level_price):
            if is_market:
                return True
            return level_price <= price if cmd.side == BUY else level_price >= price

        best = self.best(other)
        if cmd.post_only and best is not None and crosses(best):
            return [Rejected(cmd.order_id, REJECT_POST_ONLY)]

        events = [Accepted(cmd.order_id, cmd.account, cmd.side, cmd.order_type, price, cmd.size)]
        if cmd.tif == FOK and not self.fok_fillable(cmd, other, crosses):
            events.append(Cancelled(cmd.order_id, cmd.account, cmd.side, price, cmd.size, CANCEL_FOK))
            return events

        remaining = cmd.size
        stopped = False
        changed = []
        levels = self.sides[other]
        while remaining and levels:
            level_price = self.best(other)
            if not crosses(level_price):
                break
            level = levels[level_price]
            total_before = self.totals[other][level_price]
            while level and remaining:
                maker = next(iter(level.values()))
                if maker.account == cmd.account:
                    stopped = True
                    break
                qty = min(remaining, maker.remaining)
                remaining -= qty
                maker.remaining -= qty
                self.totals[other][level_price] -= qty
                if maker.remaining == 0:
                    del level[maker.order_id]
                    del self.orders[maker.order_id]
                events.append(
                    Trade(
                        cmd.order_id,
                        maker.order_id,
                        cmd.account,
                        maker.account,
                        cmd.side,
                        level_price,
                        qty,
                        remaining,
                        maker.remaining,
                    )
                )
            total = self.totals[other][level_price]
            if total != total_before:
                changed.append((level_price, total))
            if not level:
                del levels[level_price]
                del self.totals[other][level_price]
            if stopped:
                break

        rested_total = None
        if remaining:
            if stopped:
                reason = CANCEL_STP
            elif is_market:
                reason = CANCEL_NO_LIQUIDITY
            elif cmd.tif == GTC:
                reason = None
                order = Order(cmd.order_id, cmd.account, cmd.side, price, remaining)
                self.orders[cmd.order_id] = order
                own = self.sides[cmd.side]
                if price not in own:
                    own[price] = {}
                own[price][cmd.order_id] = order
                rested_total = self.totals[cmd.side].get(price, 0) + remaining
                self.totals[cmd.side][price] = rested_total
                events.append(Rested(cmd.order_id, cmd.account, cmd.side, price, remaining))
            else:
                reason = CANCEL_IOC
            if reason is not None:
                events.append(Cancelled(cmd.order_id, cmd.account, cmd.side, price, remaining, reason))
        if changed or rested_total is not None:
            self.sequence += 1
            for level_price, total in changed:
                events.append(LevelUpdate(other, level_price, total, self.sequence))
            if rested_total is not None:
                events.append(LevelUpdate(cmd.side, price, rested_total, self.sequence))
        return events

    def fok_fillable(self, cmd, other, crosses):
        need = cmd.size
        levels = self.sides[other]
        prices = reversed(levels) if other == BUY else iter(levels)
        for level_price in prices:
            if not crosses(level_price):
                return False
            for maker in levels[level_price].values():
                if maker.account == cmd.account:
                    return False
                need -= min(need, maker.remaining)
                if not need:
                    return True
        return False

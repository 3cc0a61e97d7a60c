"""OrderBook against the reference model (tests/matching/reference.py).

A Hypothesis state machine sends the same random commands to both and checks,
after every step: identical events (trades, cancels, rejections, ...),
identical resting orders in priority order, identical depth, level-2 updates
that match the depth change with a sequence that rose by one iff any update
was sent, and ``check_invariants()``.  Stop orders (triggered by the trades of
any command, cascading), good-till-date expiry on the ``Expire`` clock and
amends (in place or re-entering) are part of the same random walk, and a
restart from ``snapshot()``/``stop_orders()`` keeps all of it.
"""

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from matching import (
    BUY,
    CANCEL_BOTH,
    CANCEL_NEWEST,
    CANCEL_OLDEST,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    Amend,
    Cancel,
    Expire,
    LevelUpdate,
    NewOrder,
    OrderBook,
    Reduce,
)

from .reference import ReferenceBook

# Few prices and accounts: crossing, queueing and self-trades must be common.
prices = st.integers(97, 103)
sizes = st.integers(1, 8)
accounts = st.sampled_from(["a", "b", "c"])
tifs = st.sampled_from([GTC, GTC, IOC, FOK])
stps = st.sampled_from([CANCEL_NEWEST, CANCEL_OLDEST, CANCEL_BOTH])
junk = st.sampled_from([0, -1, None, 1.5, True, "x"])


def depth_map(depth):
    bids, asks = depth
    return {**{(BUY, p): q for p, q in bids}, **{(SELL, p): q for p, q in asks}}


class EngineVsReference(RuleBasedStateMachine):
    @initialize(seq=st.integers(0, 10**6))
    def start(self, seq):
        self.book = OrderBook(sequence=seq)
        self.ref = ReferenceBook()
        self.next_id = 1
        self.ids = []  # every id ever used, live or not
        self.now = 0

    def new_id(self):
        oid = self.next_id
        self.next_id += 1
        self.ids.append(oid)
        return oid

    def apply(self, cmd):
        depth_before = depth_map(self.ref.depth())
        seq_before = self.book.sequence
        got = self.book.process(cmd)
        want = self.ref.process(cmd)
        # identical events apart from level-2 updates ...
        body = [e for e in got if type(e) is not LevelUpdate]
        assert body == want, (cmd, got, want)
        # ... which come last, one per changed level, in one batch
        updates = got[len(body) :]
        assert all(type(e) is LevelUpdate for e in updates), got
        depth_after = depth_map(self.ref.depth())
        changed = {
            k: depth_after.get(k, 0)
            for k in depth_before.keys() | depth_after.keys()
            if depth_before.get(k, 0) != depth_after.get(k, 0)
        }
        reported = {(e.side, e.price): e.total for e in updates}
        assert len(updates) == len(reported)  # one update per level
        # Every changed level is reported with its total; a level a trigger cascade moved
        # and moved back may be reported too, with its (unchanged) total.
        assert {k: v for k, v in reported.items() if k in changed} == changed
        assert all(v == depth_after.get(k, 0) for k, v in reported.items())
        if updates:
            assert self.book.sequence == seq_before + 1
            assert {e.sequence for e in updates} == {seq_before + 1}
        else:
            assert self.book.sequence == seq_before

    @rule(side=st.sampled_from([BUY, SELL]), price=prices, size=sizes, acct=accounts, tif=tifs,
          post_only=st.booleans(), stp=stps)
    def limit(self, side, price, size, acct, tif, post_only, stp):
        self.apply(NewOrder(self.new_id(), acct, side, LIMIT, price, size, tif, post_only, stp))

    @rule(side=st.sampled_from([BUY, SELL]), size=sizes, acct=accounts, tif=tifs, stp=stps)
    def market(self, side, size, acct, tif, stp):
        self.apply(NewOrder(self.new_id(), acct, side, MARKET, 0, size, tif, False, stp))

    @rule(size=st.none() | sizes, budget=st.integers(1, 1200), acct=accounts,
          tif=st.sampled_from([GTC, IOC, FOK]), stp=stps)
    def market_buy_with_budget(self, size, budget, acct, tif, stp):
        self.apply(NewOrder(self.new_id(), acct, BUY, MARKET, 0, size, tif, False, stp, budget))

    @rule(side=st.sampled_from([BUY, SELL]), price=st.none() | prices, acct=accounts, stp=stps,
          delta=st.integers(-1, 1))
    def fok_at_the_edge(self, side, price, acct, stp, delta):
        # Size the FOK at exactly what it can reach (+-1): the boundary that matters.
        reach = 0
        for o in self.ref.makers_in_priority(side, price):
            if o.account == acct:
                if stp == CANCEL_OLDEST:
                    continue
                break
            reach += o.remaining
        size = max(1, reach + delta)
        otype = LIMIT if price is not None else MARKET
        self.apply(NewOrder(self.new_id(), acct, side, otype, price or 0, size, FOK, False, stp))

    @rule(k=st.integers(0, 30), extra=st.integers(-1, 1), size=st.none() | sizes, acct=accounts,
          stp=stps, tif=st.sampled_from([GTC, IOC, FOK]))
    def budget_at_the_edge(self, k, extra, size, acct, stp, tif):
        # A budget that buys exactly the first k reachable lots (+-1 unit).
        cost = 0
        for o in self.ref.makers_in_priority(BUY):
            take = min(k, o.remaining)
            cost += take * o.price
            k -= take
            if not k:
                break
        budget = max(1, cost + extra)
        if size is None and tif == FOK:
            tif = IOC
        self.apply(NewOrder(self.new_id(), acct, BUY, MARKET, 0, size, tif, False, stp, budget))

    @rule(data=st.data())
    def invalid_order(self, data):
        fields = dict(
            order_id=self.new_id(), account="a", side=BUY, order_type=LIMIT, price=100, size=1,
            tif=GTC, post_only=False, stp=CANCEL_NEWEST, quote_budget=None,
        )
        name = data.draw(st.sampled_from(["side", "order_type", "price", "size", "tif", "stp", "quote_budget"]))
        fields[name] = data.draw(junk)
        self.apply(NewOrder(**fields))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), price=prices, size=sizes)
    def duplicate_id(self, data, price, size):
        oid = data.draw(st.sampled_from(self.ids))
        self.apply(NewOrder(oid, "b", SELL, LIMIT, price, size))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel(self, data):
        self.apply(Cancel(data.draw(st.sampled_from(self.ids))))

    @rule()
    def cancel_unknown(self):
        self.apply(Cancel(10**9))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), by=st.integers(-1, 9))
    def reduce_by(self, data, by):
        self.apply(Reduce(data.draw(st.sampled_from(self.ids)), reduce_by=by))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), new_size=st.integers(-1, 9))
    def reduce_to(self, data, new_size):
        self.apply(Reduce(data.draw(st.sampled_from(self.ids)), new_size=new_size))

    @rule(side=st.sampled_from([BUY, SELL]), stop=prices, price=st.none() | prices, size=sizes, acct=accounts,
          tif=tifs, stp=stps, expires=st.none() | st.integers(1, 6))
    def stop_order(self, side, stop, price, size, acct, tif, stp, expires):
        otype = LIMIT if price is not None else MARKET
        expire_at = None if expires is None else self.now + expires
        self.apply(NewOrder(self.new_id(), acct, side, otype, price or 0, size, tif, False, stp, None, stop, expire_at))

    @rule(stop=prices, size=st.none() | sizes, budget=st.integers(1, 1200), acct=accounts)
    def stop_market_buy_with_budget(self, stop, size, budget, acct):
        self.apply(NewOrder(self.new_id(), acct, BUY, MARKET, 0, size, IOC, False, CANCEL_NEWEST, budget, stop))

    @rule(side=st.sampled_from([BUY, SELL]), price=prices, size=sizes, acct=accounts, stp=stps,
          expires=st.integers(-1, 6))
    def gtd_limit(self, side, price, size, acct, stp, expires):
        # expires <= 0: already expired on arrival (the engine was away)
        self.apply(NewOrder(self.new_id(), acct, side, LIMIT, price, size, GTC, False, stp, None, None,
                            self.now + expires))

    @rule(step=st.integers(0, 4))
    def clock_advances(self, step):
        self.now += step
        self.apply(Expire(self.now))

    @rule(back=st.integers(1, 3))
    def clock_never_goes_back(self, back):
        self.apply(Expire(self.now - back))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), price=st.none() | prices, new_size=st.none() | st.integers(-1, 12),
          post_only=st.booleans(), stp=stps)
    def amend(self, data, price, new_size, post_only, stp):
        self.apply(Amend(data.draw(st.sampled_from(self.ids)), price, new_size, post_only, stp))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), delta=st.integers(-2, 2))
    def amend_around_filled(self, data, delta):
        # the boundary: a new total at, just below and just above the filled lots
        oid = data.draw(st.sampled_from(self.ids))
        order = self.ref.find(oid)
        filled = order.size - order.remaining if order is not None else 0
        self.apply(Amend(oid, None, filled + delta))

    @precondition(lambda self: self.ids)
    @rule()
    def restart_from_snapshot(self):
        # what the engine process does on start: rebuild from resting orders and stops
        seq, orders = self.book.snapshot()
        self.book = OrderBook.from_resting(orders, sequence=seq, stops=self.book.stop_orders(), clock=self.book.clock)

    @invariant()
    def same_book(self):
        if not hasattr(self, "book"):
            return
        self.book.check_invariants()
        assert self.book.resting_orders() == self.ref.resting_orders()
        assert self.book.stop_orders() == self.ref.stops
        assert self.book.clock == self.ref.clock
        assert self.book.depth() == self.ref.depth()
        bids, asks = self.ref.depth()
        assert self.book.depth(2) == (bids[:2], asks[:2])
        assert len(self.book) == len(self.ref.orders)


EngineVsReference.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineVsReference = EngineVsReference.TestCase

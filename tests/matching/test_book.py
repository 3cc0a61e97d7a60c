"""Unit tests for matching.book.OrderBook: one behaviour per test.

Every command goes through ``step``/``run``, which call check_invariants()
before and after it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from matching import (
    BUY,
    CANCEL_BOTH,
    CANCEL_OLDEST,
    FOK,
    IOC,
    LIMIT,
    MARKET,
    SELL,
    Accepted,
    Cancel,
    Cancelled,
    InvariantError,
    LevelUpdate,
    NewOrder,
    OrderBook,
    Reduce,
    Reduced,
    Rejected,
    Rested,
    RestingOrder,
    Trade,
)

from .helpers import book_with, kinds, levels, non_level, run, step


def buy(oid, price, size, acct="a", **kw):
    return NewOrder(oid, acct, BUY, LIMIT, price, size, **kw)


def sell(oid, price, size, acct="a", **kw):
    return NewOrder(oid, acct, SELL, LIMIT, price, size, **kw)


def mkt(oid, side, size, acct="t", **kw):
    return NewOrder(oid, acct, side, MARKET, 0, size, **kw)


def trades(events):
    return [(e.maker_id, e.price, e.size, e.maker_remaining) for e in events if type(e) is Trade]


# -- limit orders -------------------------------------------------------------


def test_limit_rests_on_empty_book():
    book = OrderBook()
    events = step(book, buy(1, 100, 5))
    assert events == [
        Accepted(1, "a", BUY, LIMIT, 100, 5),
        Rested(1, "a", BUY, 100, 5),
        LevelUpdate(BUY, 100, 5, 1),
    ]
    assert book.depth() == ([(100, 5)], [])
    assert book.best_bid == 100 and book.best_ask is None
    assert book.sequence == 1


def test_price_then_time_priority_and_maker_price():
    # given asks 101 (id 1), 101 (id 2), 100 (id 3)
    book = book_with(sell(1, 101, 4, "m1"), sell(2, 101, 4, "m2"), sell(3, 100, 4, "m3"))
    # when a buy at 102 takes 10 lots
    events = step(book, buy(9, 102, 10, "t"))
    # then the cheaper level goes first, then time order within 101, all at maker prices
    assert trades(events) == [(3, 100, 4, 0), (1, 101, 4, 0), (2, 101, 2, 2)]
    assert events[-2:] == [LevelUpdate(SELL, 100, 0, 4), LevelUpdate(SELL, 101, 2, 4)]
    assert book.depth() == ([], [(101, 2)])


def test_partial_fills_across_levels_then_rest_remainder():
    # given two ask levels with two orders each
    book = book_with(
        sell(1, 100, 2, "m"), sell(2, 100, 3, "n"), sell(3, 101, 1, "m"), sell(4, 101, 5, "n"), sell(5, 105, 9, "m")
    )
    seq = book.sequence
    # when a buy at 101 for 20 lots arrives
    events = step(book, buy(10, 101, 20, "t"))
    # then it sweeps 100 and 101 entirely and rests 9 lots at 101
    assert kinds(events) == ["accepted"] + ["trade"] * 4 + ["rested"] + ["level"] * 3
    assert [(e.maker_id, e.size, e.taker_remaining) for e in events if type(e) is Trade] == [
        (1, 2, 18),
        (2, 3, 15),
        (3, 1, 14),
        (4, 5, 9),
    ]
    assert events[5] == Rested(10, "t", BUY, 101, 9)
    assert levels(events) == [
        LevelUpdate(SELL, 100, 0, seq + 1),
        LevelUpdate(SELL, 101, 0, seq + 1),
        LevelUpdate(BUY, 101, 9, seq + 1),
    ]
    assert book.depth() == ([(101, 9)], [(105, 9)])


def test_sell_side_sweeps_bids_best_first():
    book = book_with(buy(1, 99, 3, "m"), buy(2, 100, 3, "m"), buy(3, 98, 3, "m"))
    events = step(book, sell(4, 99, 5, "t"))
    assert trades(events) == [(2, 100, 3, 0), (1, 99, 2, 1)]
    assert all(e.taker_side == SELL for e in events if type(e) is Trade)
    assert book.depth() == ([(99, 1), (98, 3)], [])


def test_limit_does_not_trade_through_its_price():
    book = book_with(sell(1, 101, 5, "m"))
    events = step(book, buy(2, 100, 5, "t"))
    assert kinds(events) == ["accepted", "rested", "level"]
    assert book.depth() == ([(100, 5)], [(101, 5)])


def test_trade_event_carries_both_sides():
    book = book_with(sell(1, 100, 5, "maker"))
    (trade,) = [e for e in step(book, buy(2, 100, 3, "taker")) if type(e) is Trade]
    assert trade == Trade(2, 1, "taker", "maker", BUY, 100, 3, 0, 2)


# -- IOC / FOK -------------------------------------------------------------------


def test_ioc_remainder_is_cancelled():
    book = book_with(sell(1, 100, 2, "m"), sell(2, 102, 2, "m"))
    events = step(book, buy(3, 101, 5, "t", tif=IOC))
    assert trades(events) == [(1, 100, 2, 0)]
    assert Cancelled(3, "t", BUY, 101, 3, "ioc") in events
    assert book.depth() == ([], [(102, 2)])


def test_ioc_without_liquidity_changes_nothing_but_is_cancelled():
    book = book_with(sell(1, 105, 2, "m"))
    seq = book.sequence
    events = step(book, buy(2, 100, 5, "t", tif=IOC))
    assert events == [Accepted(2, "t", BUY, LIMIT, 100, 5), Cancelled(2, "t", BUY, 100, 5, "ioc")]
    assert book.sequence == seq


def test_fok_fills_completely_across_levels():
    book = book_with(sell(1, 100, 2, "m"), sell(2, 101, 3, "m"), sell(3, 101, 3, "n"))
    events = step(book, buy(4, 101, 7, "t", tif=FOK))
    assert trades(events) == [(1, 100, 2, 0), (2, 101, 3, 0), (3, 101, 2, 1)]
    assert "cancelled" not in kinds(events)


def test_fok_insufficient_changes_nothing():
    book = book_with(sell(1, 100, 2, "m"), sell(2, 102, 10, "m"))
    before = book.resting_orders(), book.sequence
    events = step(book, buy(3, 101, 5, "t", tif=FOK))
    assert events == [Accepted(3, "t", BUY, LIMIT, 101, 5), Cancelled(3, "t", BUY, 101, 5, "fok")]
    assert (book.resting_orders(), book.sequence) == before


def test_fok_does_not_count_liquidity_behind_own_order_under_cancel_newest():
    # given the taker's own order first in the level, and plenty behind it
    book = book_with(sell(1, 100, 1, "t"), sell(2, 100, 10, "other"))
    before = book.resting_orders()
    # when the same account sends a FOK buy
    events = step(book, buy(3, 100, 5, "t", tif=FOK))
    # then it is out of reach: nothing trades, nothing is cancelled but the FOK
    assert kinds(events) == ["accepted", "cancelled"] and events[1].reason == "fok"
    assert book.resting_orders() == before


def test_fok_counts_liquidity_ahead_of_own_order():
    book = book_with(sell(1, 100, 5, "other"), sell(2, 100, 10, "t"))
    events = step(book, buy(3, 100, 5, "t", tif=FOK))
    assert trades(events) == [(1, 100, 5, 0)]
    assert book.get_order(2).remaining == 10


def test_fok_under_cancel_oldest_skips_own_orders_and_cancels_them_when_filled():
    book = book_with(sell(1, 100, 1, "t"), sell(2, 100, 10, "other"))
    events = step(book, buy(3, 100, 5, "t", tif=FOK, stp=CANCEL_OLDEST))
    assert non_level(events)[1:] == [
        Cancelled(1, "t", SELL, 100, 1, "stp"),
        Trade(3, 2, "t", "other", BUY, 100, 5, 0, 5),
    ]


def test_fok_under_cancel_both_fails_at_own_order_without_cancelling_it():
    book = book_with(sell(1, 100, 1, "t"), sell(2, 100, 10, "other"))
    events = step(book, buy(3, 100, 5, "t", tif=FOK, stp=CANCEL_BOTH))
    assert kinds(events) == ["accepted", "cancelled"]
    assert 1 in book and book.get_order(2).remaining == 10


def test_fok_market_order():
    book = book_with(sell(1, 100, 2, "m"), sell(2, 500, 2, "m"))
    assert trades(step(book, mkt(3, BUY, 4, tif=FOK))) == [(1, 100, 2, 0), (2, 500, 2, 0)]
    book = book_with(sell(1, 100, 2, "m"))
    assert kinds(step(book, mkt(3, BUY, 4, tif=FOK))) == ["accepted", "cancelled"]
    assert kinds(step(OrderBook(), mkt(3, BUY, 4, tif=FOK)))[-1] == "cancelled"


# -- market orders ------------------------------------------------------------------


def test_market_order_ignores_price_and_never_rests():
    book = book_with(sell(1, 100, 2, "m"), sell(2, 900, 2, "m"))
    events = step(book, NewOrder(3, "t", BUY, MARKET, 1, 10))
    assert events[0] == Accepted(3, "t", BUY, MARKET, None, 10)
    assert trades(events) == [(1, 100, 2, 0), (2, 900, 2, 0)]
    assert Cancelled(3, "t", BUY, None, 6, "market_no_liquidity") in events
    assert len(book) == 0 and book.depth() == ([], [])


def test_market_order_on_empty_side():
    book = book_with(buy(1, 100, 2, "m"))
    events = step(book, mkt(2, BUY, 3))
    assert events == [
        Accepted(2, "t", BUY, MARKET, None, 3),
        Cancelled(2, "t", BUY, None, 3, "market_no_liquidity"),
    ]


def test_market_sell_fully_filled_has_no_cancel():
    book = book_with(buy(1, 100, 2, "m"), buy(2, 99, 5, "m"))
    events = step(book, mkt(3, SELL, 4))
    assert trades(events) == [(1, 100, 2, 0), (2, 99, 2, 3)]
    assert "cancelled" not in kinds(events)
    assert [e for e in events if type(e) is Trade][-1].taker_remaining == 0


def test_market_buy_budget_only():
    # given 100x3 and 110x5 on offer
    book = book_with(sell(1, 100, 3, "m"), sell(2, 110, 5, "m"))
    # when a market buy may spend 560 quote units, no size limit
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, None, quote_budget=560))
    # then it buys 3 @100 (300) and 2 @110 (220); 40 left cannot buy a lot
    assert [(e.price, e.size, e.taker_remaining) for e in events if type(e) is Trade] == [
        (100, 3, None),
        (110, 2, None),
    ]
    assert Cancelled(3, "t", BUY, None, None, "budget") in events
    assert book.depth() == ([], [(110, 3)])


def test_market_buy_budget_exactly_spent_or_book_exhausted():
    book = book_with(sell(1, 100, 3, "m"), sell(2, 110, 5, "m"))
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, None, quote_budget=300))
    assert non_level(events)[-1].reason == "budget"
    book = book_with(sell(1, 100, 3, "m"))
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, None, quote_budget=10_000))
    assert non_level(events)[-1] == Cancelled(3, "t", BUY, None, None, "market_no_liquidity")
    # spent to the last unit as the book runs out: the budget is what stopped it
    book = book_with(sell(1, 100, 3, "m"))
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, None, quote_budget=300))
    assert non_level(events)[-1] == Cancelled(3, "t", BUY, None, None, "budget")


def test_market_buy_budget_and_size_whichever_binds_first():
    book = book_with(sell(1, 100, 10, "m"))
    events = step(book, NewOrder(2, "t", BUY, MARKET, 0, 4, quote_budget=1_000))
    assert trades(events) == [(1, 100, 4, 6)] and "cancelled" not in kinds(events)
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, 5, quote_budget=250))
    assert trades(events) == [(1, 100, 2, 4)]
    assert Cancelled(3, "t", BUY, None, 3, "budget") in events


def test_fok_market_buy_with_budget():
    book = book_with(sell(1, 100, 10, "m"))
    events = step(book, NewOrder(2, "t", BUY, MARKET, 0, 5, FOK, quote_budget=499))
    assert kinds(events) == ["accepted", "cancelled"] and events[1].reason == "fok"
    events = step(book, NewOrder(3, "t", BUY, MARKET, 0, 5, FOK, quote_budget=500))
    assert trades(events) == [(1, 100, 5, 5)]


# -- post-only ------------------------------------------------------------------------


def test_post_only_that_would_cross_is_rejected():
    book = book_with(sell(1, 100, 5, "m"))
    before = book.resting_orders(), book.sequence
    assert step(book, buy(2, 100, 1, "t", post_only=True)) == [Rejected(2, "post_only_would_cross")]
    assert step(book, buy(3, 100, 1, "m", post_only=True)) == [Rejected(3, "post_only_would_cross")]
    assert (book.resting_orders(), book.sequence) == before


def test_post_only_that_does_not_cross_rests():
    book = book_with(sell(1, 100, 5, "m"))
    assert kinds(step(book, buy(2, 99, 1, "t", post_only=True))) == ["accepted", "rested", "level"]


# -- self-trade prevention -------------------------------------------------------------


def stp_book():
    # 100: other(2), own(3), other(4);  101: other(5)
    return book_with(
        sell(1, 100, 2, "o1"), sell(2, 100, 3, "me"), sell(3, 100, 4, "o2"), sell(4, 101, 5, "o1")
    )


def test_stp_cancel_newest_keeps_resting_order_and_cancels_taker_remainder():
    book = stp_book()
    events = step(book, buy(9, 101, 10, "me"))
    assert non_level(events)[1:] == [
        Trade(9, 1, "me", "o1", BUY, 100, 2, 8, 0),
        Cancelled(9, "me", BUY, 101, 8, "stp"),
    ]
    assert levels(events) == [LevelUpdate(SELL, 100, 7, book.sequence)]
    assert book.depth() == ([], [(100, 7), (101, 5)])


def test_stp_cancel_oldest_cancels_resting_order_and_continues():
    book = stp_book()
    events = step(book, buy(9, 101, 10, "me", stp=CANCEL_OLDEST))
    assert non_level(events)[1:] == [
        Trade(9, 1, "me", "o1", BUY, 100, 2, 8, 0),
        Cancelled(2, "me", SELL, 100, 3, "stp"),
        Trade(9, 3, "me", "o2", BUY, 100, 4, 4, 0),
        Trade(9, 4, "me", "o1", BUY, 101, 4, 0, 1),
    ]
    assert book.depth() == ([], [(101, 1)])


def test_stp_cancel_both():
    book = stp_book()
    events = step(book, buy(9, 101, 10, "me", stp=CANCEL_BOTH))
    assert non_level(events)[1:] == [
        Trade(9, 1, "me", "o1", BUY, 100, 2, 8, 0),
        Cancelled(2, "me", SELL, 100, 3, "stp"),
        Cancelled(9, "me", BUY, 101, 8, "stp"),
    ]
    assert book.depth() == ([], [(100, 4), (101, 5)])


def test_stp_only_own_liquidity_no_trade():
    book = book_with(sell(1, 100, 2, "me"))
    seq = book.sequence
    events = step(book, buy(2, 100, 2, "me"))
    assert events[1:] == [Cancelled(2, "me", BUY, 100, 2, "stp")]
    assert book.sequence == seq
    events = step(book, buy(3, 100, 2, "me", stp=CANCEL_OLDEST))
    # the own order goes, then nothing is left to take: the buy rests
    assert kinds(events) == ["accepted", "cancelled", "rested", "level", "level"]
    assert book.depth() == ([(100, 2)], [])


def test_stp_on_market_order_and_ioc():
    book = book_with(sell(1, 100, 2, "me"), sell(2, 100, 2, "x"))
    events = step(book, mkt(3, BUY, 5, acct="me", stp=CANCEL_OLDEST))
    assert kinds(events) == ["accepted", "cancelled", "trade", "cancelled", "level"]
    assert events[3].reason == "market_no_liquidity" and events[3].remaining == 3
    book = book_with(buy(1, 100, 2, "me"))
    events = step(book, sell(2, 100, 5, "me", tif=IOC))
    assert events[-1] == Cancelled(2, "me", SELL, 100, 5, "stp")


# -- cancel -------------------------------------------------------------------------------


def test_cancel_resting_order_updates_level():
    book = book_with(buy(1, 100, 2), buy(2, 100, 3))
    seq = book.sequence
    assert step(book, Cancel(1)) == [Cancelled(1, "a", BUY, 100, 2, "user"), LevelUpdate(BUY, 100, 3, seq + 1)]
    assert step(book, Cancel(2))[-1] == LevelUpdate(BUY, 100, 0, seq + 2)
    assert book.depth() == ([], []) and book.best_bid is None


def test_cancel_unknown_and_closed_ids_are_reported():
    book = book_with(sell(1, 100, 2, "m"), buy(2, 100, 2, "t"))  # 1 and 2 are now filled
    seq = book.sequence
    assert step(book, Cancel(1)) == [Rejected(1, "unknown_order")]
    assert step(book, Cancel(2)) == [Rejected(2, "unknown_order")]
    assert step(book, Cancel(777)) == [Rejected(777, "unknown_order")]
    book2 = book_with(buy(5, 100, 1))
    step(book2, Cancel(5))
    assert step(book2, Cancel(5)) == [Rejected(5, "unknown_order")]
    assert book.sequence == seq


def test_cancel_from_middle_keeps_priority_of_the_rest():
    book = book_with(sell(1, 100, 1, "m"), sell(2, 100, 1, "m"), sell(3, 100, 1, "m"))
    step(book, Cancel(2))
    assert trades(step(book, buy(4, 100, 2, "t"))) == [(1, 100, 1, 0), (3, 100, 1, 0)]


def test_many_cancels_in_one_level_are_compacted_and_matching_still_right():
    book = book_with(*[sell(i, 100, 1, "m") for i in range(1, 301)])
    for i in range(1, 300):
        if i % 7:
            step(book, Cancel(i))
    survivors = [i for i in range(1, 301) if i % 7 == 0 or i == 300]
    events = step(book, buy(1000, 100, 1000, "t", tif=IOC))
    assert [t[0] for t in trades(events)] == survivors


def test_heap_stays_bounded_under_level_churn():
    book = OrderBook()
    for i in range(2000):
        # deep levels appear and vanish while the top stays put
        run(book, buy(10_000 + i, 50 + i % 40, 1), Cancel(10_000 + i))
        if i == 0:
            step(book, buy(1, 100, 1))
    assert len(book._bid_heap) <= 2 * len(book._bids) + 65


# -- reduce ---------------------------------------------------------------------------------


def test_reduce_by_keeps_priority():
    book = book_with(sell(1, 100, 5, "m"), sell(2, 100, 5, "n"))
    seq = book.sequence
    assert step(book, Reduce(1, reduce_by=3)) == [
        Reduced(1, "m", SELL, 100, 2, 3),
        LevelUpdate(SELL, 100, 7, seq + 1),
    ]
    assert trades(step(book, buy(3, 100, 3, "t"))) == [(1, 100, 2, 0), (2, 100, 1, 4)]


def test_reduce_new_size_counts_filled_lots():
    # given an order of 10 with 4 filled
    book = book_with(sell(1, 100, 10, "m"), buy(2, 100, 4, "t"))
    # when its total size is cut to 7, then 3 remain
    assert step(book, Reduce(1, new_size=7))[0] == Reduced(1, "m", SELL, 100, 3, 3)
    assert book.get_order(1) == RestingOrder(1, "m", SELL, 100, 3, 7)
    # and cutting to the filled amount cancels it
    assert step(book, Reduce(1, new_size=4))[0] == Cancelled(1, "m", SELL, 100, 3, "user")
    assert 1 not in book


def test_reduce_to_nothing_cancels():
    book = book_with(sell(1, 100, 5, "m"))
    assert step(book, Reduce(1, reduce_by=5))[0] == Cancelled(1, "m", SELL, 100, 5, "user")
    book = book_with(sell(1, 100, 5, "m"))
    assert step(book, Reduce(1, new_size=0))[0].reason == "user"


@pytest.mark.parametrize(
    "cmd",
    [
        Reduce(1),
        Reduce(1, new_size=5),
        Reduce(1, new_size=9),
        Reduce(1, new_size=-1),
        Reduce(1, reduce_by=0),
        Reduce(1, reduce_by=-2),
        Reduce(1, new_size=2, reduce_by=1),
        Reduce(1, reduce_by=1.0),
        Reduce(1, new_size=True),
    ],
)
def test_reduce_invalid(cmd):
    book = book_with(sell(1, 100, 5, "m"))
    seq = book.sequence
    assert step(book, cmd) == [Rejected(1, "invalid_quantity")]
    assert book.sequence == seq and book.get_order(1).remaining == 5


def test_reduce_unknown():
    assert step(OrderBook(), Reduce(4, reduce_by=1)) == [Rejected(4, "unknown_order")]


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd,reason",
    [
        (NewOrder(1, "a", "X", LIMIT, 100, 1), "invalid_order"),
        (NewOrder(1, "a", BUY, "Q", 100, 1), "invalid_order"),
        (NewOrder(1, "a", BUY, LIMIT, 100, 1, tif="DAY"), "invalid_order"),
        (NewOrder(1, "a", BUY, LIMIT, 100, 1, stp="nope"), "invalid_order"),
        (NewOrder(1, "a", BUY, LIMIT, 0, 1), "invalid_price"),
        (NewOrder(1, "a", BUY, LIMIT, -5, 1), "invalid_price"),
        (NewOrder(1, "a", BUY, LIMIT, 100.0, 1), "invalid_price"),
        (NewOrder(1, "a", BUY, LIMIT, None, 1), "invalid_price"),
        (NewOrder(1, "a", BUY, LIMIT, 2**62, 1), "invalid_price"),
        (NewOrder(1, "a", BUY, LIMIT, 100, 0), "invalid_quantity"),
        (NewOrder(1, "a", BUY, LIMIT, 100, -3), "invalid_quantity"),
        (NewOrder(1, "a", BUY, LIMIT, 100, 1.5), "invalid_quantity"),
        (NewOrder(1, "a", BUY, LIMIT, 100, True), "invalid_quantity"),
        (NewOrder(1, "a", BUY, LIMIT, 100, None), "invalid_quantity"),
        (NewOrder(1, "a", BUY, LIMIT, 100, 1, quote_budget=10), "invalid_order"),
        (NewOrder(1, "a", BUY, MARKET, 0, 0), "invalid_quantity"),
        (NewOrder(1, "a", BUY, MARKET, 0, None), "invalid_quantity"),
        (NewOrder(1, "a", BUY, MARKET, 0, 1, post_only=True), "invalid_order"),
        (NewOrder(1, "a", SELL, MARKET, 0, 1, quote_budget=10), "invalid_order"),
        (NewOrder(1, "a", BUY, MARKET, 0, None, quote_budget=0), "invalid_quantity"),
        (NewOrder(1, "a", BUY, MARKET, 0, 0, quote_budget=10), "invalid_quantity"),
        (NewOrder(1, "a", BUY, MARKET, 0, None, FOK, quote_budget=10), "invalid_order"),
    ],
)
def test_invalid_new_orders_are_rejected_not_raised(cmd, reason):
    book = book_with(sell(50, 100, 1, "m"), buy(51, 90, 1, "m"))
    before = book.resting_orders(), book.sequence
    assert step(book, cmd) == [Rejected(1, reason)]
    assert (book.resting_orders(), book.sequence) == before


def test_duplicate_resting_id_rejected_closed_id_reusable():
    book = book_with(buy(1, 90, 1))
    assert step(book, sell(1, 100, 1)) == [Rejected(1, "duplicate_order_id")]
    step(book, Cancel(1))
    # uniqueness is the caller's (primary keys); the book only knows resting ids
    assert kinds(step(book, sell(1, 100, 1))) == ["accepted", "rested", "level"]


def test_not_a_command_raises_type_error():
    with pytest.raises(TypeError):
        OrderBook().process(("N", 1))


# -- sequence ----------------------------------------------------------------------------------


def test_sequence_rises_by_one_per_changing_command():
    book = OrderBook(sequence=41)
    step(book, sell(1, 100, 5, "m"))
    assert book.sequence == 42
    events = step(book, buy(2, 101, 2, "t"))  # trade only: one batch
    assert {e.sequence for e in levels(events)} == {43}
    step(book, Cancel(99))  # rejected: no change
    step(book, buy(3, 50, 1, "t", tif=IOC))  # nothing happens on the book
    assert book.sequence == 43
    events = step(book, buy(4, 101, 10, "t"))  # trade + rest: still one batch
    assert [e.sequence for e in levels(events)] == [44, 44]
    assert kinds(events)[-2:] == ["level", "level"]


# -- restore, snapshot, depth --------------------------------------------------------------------


def test_restore_round_trip_keeps_priority_and_sequence():
    book = book_with(
        sell(1, 101, 2, "a"), sell(2, 101, 3, "b"), sell(3, 103, 1, "a"), buy(4, 99, 5, "c"), buy(5, 98, 1, "d")
    )
    step(book, buy(6, 101, 1, "e"))  # partial fill of order 1
    seq, orders = book.snapshot()
    clone = OrderBook.from_resting(orders, sequence=seq)
    clone.check_invariants()
    assert clone.resting_orders() == orders and clone.sequence == seq
    assert clone.depth() == book.depth()
    cmd = buy(7, 101, 3, "z")
    assert clone.process(cmd) == book.process(cmd)


def test_restore_accepts_plain_tuples_and_time_priority():
    book = OrderBook()
    book.restore([(10, "x", SELL, 100, 2), (5, "y", SELL, 100, 2, 7), (11, "x", BUY, 90, 1)], sequence=5)
    book.check_invariants()
    assert book.get_order(5) == RestingOrder(5, "y", SELL, 100, 2, 7)
    assert trades(step(book, buy(1, 100, 3, "t"))) == [(10, 100, 2, 0), (5, 100, 1, 1)]
    assert book.sequence == 6


@pytest.mark.parametrize(
    "orders",
    [
        [(1, "a", BUY, 100, 1), (2, "b", SELL, 100, 1)],  # crossed
        [(1, "a", BUY, 100, 1), (1, "b", BUY, 99, 1)],  # duplicate
        [(1, "a", BUY, 0, 1)],
        [(1, "a", BUY, 100, 0)],
        [(1, "a", "Z", 100, 1)],
        [(1, "a", BUY, 100, 5, 3)],  # size < remaining
    ],
)
def test_restore_rejects_bad_input_and_leaves_empty_book(orders):
    book = book_with(buy(9, 10, 1))
    with pytest.raises(ValueError):
        book.restore(orders)
    book.check_invariants()
    assert len(book) == 0


def test_depth_top_n():
    book = book_with(*[buy(i, 100 - i, i) for i in range(1, 6)], *[sell(10 + i, 100 + i, 1) for i in range(1, 4)])
    step(book, sell(20, 101, 4))
    assert book.depth(2) == ([(99, 1), (98, 2)], [(101, 5), (102, 1)])
    assert book.depth()[1] == [(101, 5), (102, 1), (103, 1)]


# -- invariants and purity -----------------------------------------------------------------------


def test_check_invariants_detects_corruption():
    book = book_with(buy(1, 100, 5), buy(2, 100, 5), sell(3, 105, 1))
    book._bids[-100][0] += 1  # level total no longer the sum
    with pytest.raises(InvariantError):
        book.check_invariants()
    book = book_with(buy(1, 100, 5), sell(3, 105, 1))
    book._orders.pop(1)  # queued but not indexed
    with pytest.raises(InvariantError):
        book.check_invariants()
    book = book_with(buy(1, 100, 5), sell(3, 105, 1))
    book._asks[105][2][0][3] = 99  # order in the wrong level
    with pytest.raises(InvariantError):
        book.check_invariants()


def test_engine_package_imports_no_django():
    code = "import sys, matching.replay, matching.workload; print([m for m in sys.modules if m.startswith('django')])"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"

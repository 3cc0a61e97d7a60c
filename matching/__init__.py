"""Bourse matching engine core: one pure-Python order book per market.

This package imports nothing from Django (nor anything outside the standard
library) so it can run in a bare engine process, in the replay harness and in
tests without a database.  Prices are integer ticks, sizes integer lots, quote
amounts integer ``ticks * lots``; there are no floats anywhere.

Integration contract (kept stable for the order-lifecycle code)
================================================================

Book
----
``OrderBook()`` -- one per market; not thread-safe.

* ``process(command) -> list[event]``: the only way to change the book.
  Commands are handled one at a time; persist the returned events in order.
* ``OrderBook.from_resting(orders, sequence=0, stops=(), clock=0)`` /
  ``book.restore(...)``: build the book at start from resting orders given in
  time priority, each a ``RestingOrder(order_id, account, side, price,
  remaining, size=None, expire_at=None)`` or an equal plain tuple, and the
  untriggered stop orders as their ``NewOrder`` commands in trigger priority.
  ``sequence`` continues the persisted level-2 sequence.  Emits no events;
  raises ``ValueError`` on bad input.
* ``stop_orders()``: the untriggered stops, in trigger priority; ``clock``:
  the ``Expire`` clock; ``next_expiry``: the earliest live expire_at or None.
* ``sequence``: the level-2 sequence number (int attribute, settable).
* ``depth(n=None) -> (bids, asks)``: lists of ``(price_ticks, total_lots)``,
  best first, at most ``n`` levels each.
* ``resting_orders() -> list[RestingOrder]``: bids best-first then asks
  best-first, time priority within a level (restore() accepts it back);
  ``snapshot() -> (sequence, resting_orders())``; ``get_order(id)``;
  ``len(book)``; ``id in book``; ``best_bid`` / ``best_ask``.
* ``check_invariants()``: raises ``InvariantError`` (an AssertionError) if the
  book is inconsistent.  O(book); for tests and debugging.

Commands (named tuples, ``matching.messages``)
----------------------------------------------------
* ``NewOrder(order_id, account, side, order_type=LIMIT, price=0, size=None,
  tif=GTC, post_only=False, stp=CANCEL_NEWEST, quote_budget=None,
  stop_price=None, expire_at=None)``.
  order_id: int, unique (the DB primary key; uniqueness is checked against
  resting orders only).  account: any hashable.  side BUY "B" / SELL "S";
  order_type LIMIT "L" / MARKET "M"; tif GTC / IOC / FOK; stp
  "cancel_newest" / "cancel_oldest" / "cancel_both".
  Market orders ignore price and never rest.  quote_budget (MARKET BUY only):
  spend at most this many quote units; size may then be None (only the budget
  limits the order) or an int (whichever limit binds first).  FOK needs a size.
  stop_price makes it a stop order (waits untriggered until a trade prints at
  or beyond it: buy when price >= stop, sell when <= stop; then enters as its
  limit/market form); expire_at (an int on the ``Expire`` clock) makes it
  good-till-date.
* ``Cancel(order_id)`` (a resting or an untriggered order).
* ``Amend(order_id, price=None, new_size=None, post_only=False,
  stp=CANCEL_NEWEST)``: same price and a smaller size keeps priority; a price
  change or a larger size loses it (the order re-enters at the back as a GTC
  limit taker: it may trade at once; post_only refuses a crossing amend).
* ``Expire(now)``: advance the clock (never back) and cancel every order with
  expire_at <= clock, reason "expired", in (expire_at, order_id) order.
* ``Reduce(order_id, new_size=None, reduce_by=None)``: exactly one of them.
  new_size is the new *total* size (filled + remaining) and must be smaller
  than the current total; reduce_by takes lots off the remaining.  The order
  keeps its priority; if nothing would remain it is cancelled (reason "user").

Events (named tuples; each class has a ``kind`` tag)
----------------------------------------------------
* ``Accepted(order_id, account, side, order_type, price, size)`` -- first
  event of every NewOrder that is not rejected (price None for market orders).
* ``Trade(taker_id, maker_id, taker_account, maker_account, taker_side,
  price, size, taker_remaining, maker_remaining)`` -- at the maker's price;
  remaining values are after this trade (taker_remaining None for a
  budget-only market buy; maker_remaining 0 = maker left the book).
* ``Rested(order_id, account, side, price, remaining)`` -- the remainder rests.
* ``Cancelled(order_id, account, side, price, remaining, reason)`` --
  remaining = lots cancelled (None for a budget-only market buy).  Reasons:
  "user" (Cancel, or Reduce to nothing), "ioc" (IOC limit remainder), "fok"
  (FOK could not fill completely; nothing traded), "stp" (self-trade
  prevention: the taker's remainder, and/or the resting order under
  cancel_oldest / cancel_both), "market_no_liquidity" (market order ran out
  of book), "budget" (market buy's budget cannot pay for another lot at the
  next price, or is spent).  A market order always ends with either its last
  Trade having taker_remaining 0 or a Cancelled; a budget-only market buy
  always ends with a Cancelled.
* ``Reduced(order_id, account, side, price, remaining, reduced_by)``.
* ``Amended(order_id, account, side, price, remaining, size, kept_priority)``
  -- first event of an applied Amend; when priority was lost, the re-entry's
  Trades and Rested/Cancelled follow.
* ``Untriggered(order_id, account, side, stop_price)`` -- after ``Accepted``:
  the stop order waits.
* ``Triggered(order_id, account, side, order_type, price, size)`` -- a trade
  reached the stop; in place of ``Accepted``, the entry's events follow.
* ``Rejected(order_id, reason)`` -- the command changed nothing.  Reasons:
  "invalid_order" (unknown side/type/tif/stp; budget on a limit or sell;
  post-only market; budget-only FOK), "invalid_price" (limit price not an
  int with 0 < price < 2**62), "invalid_quantity" (size/budget not an int > 0; bad new_size or
  reduce_by), "duplicate_order_id" (id already resting), "unknown_order"
  (Cancel/Reduce of an id that is not resting: never existed or closed),
  "post_only_would_cross".  When several apply, the first found wins:
  enumerations, then price, then combinations and quantities, then the
  duplicate id, then post-only.
* ``LevelUpdate(side, price, total, sequence)`` -- level-2 change; total 0
  removes the level.  All LevelUpdates of one ``process`` call come last,
  carry the same ``sequence`` = previous + 1, one per changed level: maker
  levels in the order they were reached, then the taker's level if it rested.
  A call that changes no level leaves ``sequence`` alone.  When the call
  triggered stop orders, its updates cover the whole cascade, each level once
  with its final total (a level moved and moved back may be listed with its
  unchanged total).

Stop triggering: after a command, its trades are taken in print order; the
stops a trade's price reaches enter in arrival order (an amend that loses
priority counts as a new arrival); a triggered order's own trades queue
further stops behind those already queued; all within the same ``process``
call, so a replay of the same commands gives the same events.

Order of events for one NewOrder: Accepted, then Trades (with Cancelled "stp"
of resting orders interleaved where they happen), then Rested or Cancelled for
the taker's remainder, then LevelUpdates.

Matching semantics: price-time priority; trades at the resting order's price;
market orders ignore price; IOC remainder cancelled; FOK fills completely or
not at all, counting only liquidity it could really take (under cancel_newest
and cancel_both nothing at or behind the taker's own first resting order;
under cancel_oldest own orders are skipped); a post-only order that would take
liquidity (crosses the opposite best, whoever owns it) is rejected.
Self-trade prevention when the taker meets a resting order of the same
account: cancel_newest cancels the taker's remainder, cancel_oldest cancels the
resting order and continues, cancel_both cancels both.  A failed FOK changes
nothing, including no STP cancellations.

See ``matching.replay`` for the command-file harness.
"""

from .book import InvariantError, OrderBook
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
    CANCEL_REASONS,
    CANCEL_STP,
    CANCEL_USER,
    EVENT_TYPES,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REJECT_DUPLICATE,
    REJECT_INVALID,
    REJECT_POST_ONLY,
    REJECT_PRICE,
    REJECT_QUANTITY,
    REJECT_REASONS,
    REJECT_UNKNOWN,
    SELL,
    STP_MODES,
    Accepted,
    Amend,
    Amended,
    Cancel,
    Cancelled,
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

__all__ = [
    "OrderBook",
    "InvariantError",
    "NewOrder",
    "Cancel",
    "Reduce",
    "Amend",
    "Expire",
    "RestingOrder",
    "Accepted",
    "Rested",
    "Trade",
    "Cancelled",
    "Reduced",
    "Amended",
    "Untriggered",
    "Triggered",
    "Rejected",
    "LevelUpdate",
    "EVENT_TYPES",
    "BUY",
    "SELL",
    "LIMIT",
    "MARKET",
    "GTC",
    "IOC",
    "FOK",
    "CANCEL_NEWEST",
    "CANCEL_OLDEST",
    "CANCEL_BOTH",
    "STP_MODES",
    "CANCEL_USER",
    "CANCEL_IOC",
    "CANCEL_FOK",
    "CANCEL_STP",
    "CANCEL_NO_LIQUIDITY",
    "CANCEL_BUDGET",
    "CANCEL_EXPIRED",
    "CANCEL_REASONS",
    "REJECT_POST_ONLY",
    "REJECT_DUPLICATE",
    "REJECT_QUANTITY",
    "REJECT_PRICE",
    "REJECT_INVALID",
    "REJECT_UNKNOWN",
    "REJECT_REASONS",
]

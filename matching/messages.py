"""Commands the order book accepts and events it emits, plus their vocabulary.

Everything that crosses the engine boundary is defined here so that the
order-lifecycle code, the replay harness and the tests share one spelling.

Commands and events are named tuples: self-describing (``event.price``), cheap
to compare in tests, and immutable.  The book builds events with
``tuple.__new__(Cls, (...))`` rather than ``Cls(...)`` because that skips the
Python-level ``__new__`` that ``namedtuple`` generates (about 80 ns instead of
150 ns per event on the reference machine; see ``bench/engine.md``).

Every event class has a ``kind`` class attribute (a short string) for
serialisers that prefer a tag over ``type(event)``; each is a ``namedtuple``
subclass with no instance dictionary (``__slots__ = ()``) that only adds it.

Prices are integer ticks, sizes integer lots, quote budgets integer quote units
(ticks * lots).  Nothing here is ever a float.
"""

from collections import namedtuple

# -- vocabulary -------------------------------------------------------------

BUY = "B"
SELL = "S"

LIMIT = "L"
MARKET = "M"

GTC = "GTC"
IOC = "IOC"
FOK = "FOK"

CANCEL_NEWEST = "cancel_newest"
CANCEL_OLDEST = "cancel_oldest"
CANCEL_BOTH = "cancel_both"

SIDES = frozenset((BUY, SELL))
ORDER_TYPES = frozenset((LIMIT, MARKET))
TIFS = frozenset((GTC, IOC, FOK))
STP_MODES = frozenset((CANCEL_NEWEST, CANCEL_OLDEST, CANCEL_BOTH))

# Reasons carried by ``Cancelled.reason``.
CANCEL_USER = "user"  # Cancel command, or Reduce down to nothing
CANCEL_IOC = "ioc"  # unfilled remainder of an IOC limit order
CANCEL_FOK = "fok"  # FOK order that could not fill completely (nothing traded)
CANCEL_STP = "stp"  # self-trade prevention (taker remainder or resting order)
CANCEL_NO_LIQUIDITY = "market_no_liquidity"  # market order ran out of book
CANCEL_BUDGET = "budget"  # market buy's quote budget cannot buy another lot
CANCEL_EXPIRED = "expired"  # a good-till-date order reached its expire_at (``Expire``)

CANCEL_REASONS = frozenset(
    (CANCEL_USER, CANCEL_IOC, CANCEL_FOK, CANCEL_STP, CANCEL_NO_LIQUIDITY, CANCEL_BUDGET, CANCEL_EXPIRED)
)

# Reasons carried by ``Rejected.reason``.  A rejected command changed nothing.
REJECT_POST_ONLY = "post_only_would_cross"
REJECT_DUPLICATE = "duplicate_order_id"  # id is already resting in this book
REJECT_QUANTITY = "invalid_quantity"  # size/budget/new_size/reduce_by not a positive int
REJECT_PRICE = "invalid_price"  # limit price not an int in 1 .. 2**62 - 1
REJECT_INVALID = "invalid_order"  # unknown side/type/tif/stp, or a forbidden combination
REJECT_UNKNOWN = "unknown_order"  # cancel/reduce/amend of an id that is not resting or untriggered

REJECT_REASONS = frozenset(
    (
        REJECT_POST_ONLY,
        REJECT_DUPLICATE,
        REJECT_QUANTITY,
        REJECT_PRICE,
        REJECT_INVALID,
        REJECT_UNKNOWN,
    )
)

# -- commands ---------------------------------------------------------------

NewOrder = namedtuple(
    "NewOrder",
    "order_id account side order_type price size tif post_only stp quote_budget stop_price expire_at",
    defaults=(LIMIT, 0, None, GTC, False, CANCEL_NEWEST, None, None, None),
)
NewOrder.__doc__ = """Submit an order.

order_id: int, unique per book (the order's primary key).
account: any hashable; equal accounts trigger self-trade prevention.
side: BUY or SELL.  order_type: LIMIT or MARKET.
price: ticks (int > 0) for LIMIT; ignored for MARKET.
size: lots (int > 0).  May be None only for a MARKET BUY with a quote_budget.
tif: GTC, IOC or FOK.  MARKET orders never rest, so GTC and IOC are the same
    for them.
post_only: reject instead of taking liquidity (LIMIT only).
stp: CANCEL_NEWEST (default), CANCEL_OLDEST or CANCEL_BOTH.
quote_budget: MARKET BUY only: spend at most this many quote units
    (sum of price_ticks * lots over its trades).  With a size as well, the order
    stops at whichever limit binds first.  A FOK order needs a size.
stop_price: ticks (int > 0) or None.  With a stop price the order is a stop
    order: it waits untriggered (``Untriggered``) until a trade of this book
    prints at or beyond it (BUY: trade price >= stop; SELL: <= stop), then
    enters as its limit/market form (``Triggered``).  Not with post_only.
expire_at: an int on the clock ``Expire`` advances (the engine process uses
    microseconds since the epoch), or None.  The order (resting or untriggered)
    is cancelled with reason ``expired`` once the clock reaches it; an order
    already expired when it arrives is accepted and cancelled at once.
"""

Cancel = namedtuple("Cancel", "order_id")
Cancel.__doc__ = "Cancel a resting order (reason ``user``)."

Reduce = namedtuple("Reduce", "order_id new_size reduce_by", defaults=(None, None))
Reduce.__doc__ = """Shrink a resting order in place; it keeps its time priority.

Give exactly one of:
new_size: the order's new total size (lots, including what already traded);
    must be smaller than the current total size.  new remaining =
    new_size - filled.
reduce_by: lots to take off the remaining size (int > 0).
If the new remaining is <= 0 the order is cancelled (``Cancelled`` with
reason ``user``) instead.
"""

Amend = namedtuple("Amend", "order_id price new_size post_only stp", defaults=(None, None, False, CANCEL_NEWEST))
Amend.__doc__ = """Change a resting or untriggered limit order in place (same order_id).

price: new limit price (ticks) or None (unchanged).  new_size: new *total* size
(lots, including what already traded; must exceed the filled lots) or None.
At least one of them.  Same price and a smaller (or equal) size keeps the
order's time priority; a price change or a larger size loses it: the order
leaves its level and re-enters at the back as a GTC limit taker, so a new
price that crosses trades at once (with ``stp``), unless ``post_only`` is set,
in which case the amend is rejected and nothing changes.  Untriggered stop
orders change in place (priority among stops: as above).
"""

Expire = namedtuple("Expire", "now")
Expire.__doc__ = """Advance the book's clock to ``now`` (it never goes back) and cancel, with
reason ``expired``, every order whose expire_at <= the clock, in (expire_at,
order_id) order."""

RestingOrder = namedtuple(
    "RestingOrder", "order_id account side price remaining size expire_at", defaults=(None, None)
)
RestingOrder.__doc__ = """One resting order, as given to ``restore`` and listed by ``resting_orders``.

size is the order's total size (remaining + filled); on restore it defaults to
remaining, which only matters for a later ``Reduce(new_size=...)``.  expire_at
is the order's expiry on the ``Expire`` clock, or None.
"""

# -- events -----------------------------------------------------------------


class Accepted(namedtuple("Accepted", "order_id account side order_type price size")):
    """A NewOrder passed validation and will be processed.

    price is None for market orders; size is None for a budget-only market buy.
    Always the first event of a NewOrder that is not rejected.
    """

    __slots__ = ()
    kind = "accepted"


class Rested(namedtuple("Rested", "order_id account side price remaining")):
    """The order's remainder now rests in the book at ``price``."""

    __slots__ = ()
    kind = "rested"


class Trade(
    namedtuple(
        "Trade",
        "taker_id maker_id taker_account maker_account taker_side price size "
        "taker_remaining maker_remaining",
    )
):
    """One fill, at the maker's price.

    taker_remaining is the taker's unfilled lots after this trade (None for a
    budget-only market buy); maker_remaining is the maker's after this trade
    (0 means the maker left the book, fully filled).
    """

    __slots__ = ()
    kind = "trade"


class Cancelled(namedtuple("Cancelled", "order_id account side price remaining reason")):
    """An order (taker remainder or resting order) was closed without filling.

    remaining is the number of lots cancelled (None for a budget-only market buy).
    price is None for market orders.  reason is one of CANCEL_REASONS.
    """

    __slots__ = ()
    kind = "cancelled"


class Reduced(namedtuple("Reduced", "order_id account side price remaining reduced_by")):
    """A resting order shrank in place (priority kept); remaining is the new size."""

    __slots__ = ()
    kind = "reduced"


class Amended(namedtuple("Amended", "order_id account side price remaining size kept_priority")):
    """An ``Amend`` applied: the order's price, remaining and total size now.

    kept_priority False: the order left its place; the events that follow
    (Trades, then Rested or Cancelled) are its re-entry, as for a new order.
    For an untriggered stop order remaining equals size.
    """

    __slots__ = ()
    kind = "amended"


class Untriggered(namedtuple("Untriggered", "order_id account side stop_price")):
    """A stop order was accepted and waits for a trade at or beyond its stop price."""

    __slots__ = ()
    kind = "untriggered"


class Triggered(namedtuple("Triggered", "order_id account side order_type price size")):
    """A trade reached a stop order's stop price: it enters the book now.

    Takes the place of ``Accepted`` for the order's entry: its Trades, then
    Rested or Cancelled follow, as for a new order.
    """

    __slots__ = ()
    kind = "triggered"


class Rejected(namedtuple("Rejected", "order_id reason")):
    """The command was refused and changed nothing.  reason is one of REJECT_REASONS."""

    __slots__ = ()
    kind = "rejected"


class LevelUpdate(namedtuple("LevelUpdate", "side price total sequence")):
    """Level-2 change: the level ``(side, price)`` now holds ``total`` lots.

    total 0 means the level is gone.  All LevelUpdates of one ``process`` call
    share one sequence number, which is the previous one plus 1; they come last in
    the call's event list, maker-side levels first (in the order they were
    reached), then the taker's own level if it rested.
    """

    __slots__ = ()
    kind = "level"


EVENT_TYPES = (Accepted, Rested, Trade, Cancelled, Reduced, Amended, Untriggered, Triggered, Rejected, LevelUpdate)

#: Any event ``OrderBook.process`` emits.
Event = Accepted | Rested | Trade | Cancelled | Reduced | Amended | Untriggered | Triggered | Rejected | LevelUpdate
#: Any command ``OrderBook.process`` accepts.
Command = NewOrder | Cancel | Reduce | Amend | Expire

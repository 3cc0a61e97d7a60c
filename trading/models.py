"""Markets (and, as the order lifecycle lands, orders and fills)."""
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from accounts.models import BOUND_HEADROOM_DIGITS, Asset, MoneyField, money_bound

FEE_RATE_PLACES = 6


class Market(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HALTED = "halted", "Halted"

    symbol = models.CharField(
        max_length=33,
        unique=True,
        validators=[RegexValidator(r"\A[A-Z][A-Z0-9]{1,15}-[A-Z][A-Z0-9]{1,15}\Z", "Symbols look like BASE-QUOTE.")],
    )
    base = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="base_markets")
    quote = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="quote_markets")
    tick_size = MoneyField(help_text="Prices must be multiples of this (in the quote asset).")
    lot_size = MoneyField(help_text="Quantities must be multiples of this (in the base asset).")
    min_quantity = MoneyField(default=Decimal(0))
    min_notional = MoneyField(default=Decimal(0), help_text="Smallest price × quantity, in the quote asset.")
    maker_fee_rate = models.DecimalField(max_digits=8, decimal_places=FEE_RATE_PLACES, default=Decimal(0))
    taker_fee_rate = models.DecimalField(max_digits=8, decimal_places=FEE_RATE_PLACES, default=Decimal(0))
    # Bounds on one order; empty means the safe default derived from the assets' decimals and
    # the money columns (``accounts.models.money_bound``); see docs/trading.md.
    max_price = MoneyField(null=True, blank=True, help_text="Largest price (quote asset); empty: the safe default.")
    max_quantity = MoneyField(
        null=True, blank=True, help_text="Largest quantity (base asset); empty: the safe default."
    )
    max_notional = MoneyField(
        null=True, blank=True, help_text="Largest price × quantity or market-buy budget (quote asset); empty: the safe default."
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="market_tick_size_positive"),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="market_lot_size_positive"),
            models.CheckConstraint(condition=Q(min_quantity__gte=0), name="market_min_quantity_not_negative"),
            models.CheckConstraint(condition=Q(min_notional__gte=0), name="market_min_notional_not_negative"),
            models.CheckConstraint(
                condition=Q(maker_fee_rate__gte=0, maker_fee_rate__lt=1), name="market_maker_fee_range"
            ),
            models.CheckConstraint(
                condition=Q(taker_fee_rate__gte=0, taker_fee_rate__lt=1), name="market_taker_fee_range"
            ),
            models.CheckConstraint(condition=~Q(base=models.F("quote")), name="market_base_differs_from_quote"),
        ]

    def __str__(self):
        return self.symbol

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def bound_problems(self) -> list[dict]:
        """Configured bounds the money columns could not honour. The defaults keep three digits
        of headroom (balances summing many maximal orders still fit); an operator may lower a
        bound freely or raise it into that headroom, never past what one order's amount can be
        stored exactly with."""
        problems = []
        for field, value, scale in (
            ("max_price", self.max_price, self.quote.scale),
            ("max_quantity", self.max_quantity, self.base.scale),
            ("max_notional", self.max_notional, self.quote.scale),
        ):
            if value is None:
                continue
            ceiling = money_bound(scale) * 10**BOUND_HEADROOM_DIGITS - Decimal(1).scaleb(-scale)
            if value <= 0:
                problems.append({"field": field, "code": "invalid", "message": f"{field} must be positive"})
            elif value > ceiling:
                allowed = format(ceiling, "f")
                problems.append(
                    {"field": field, "code": field, "message": f"{field} must be at most {allowed}", "allowed": allowed}
                )
        return problems

    def clean(self):
        super().clean()
        if self.base_id and self.quote_id:
            problems = self.bound_problems()
            if problems:
                raise DjangoValidationError({p["field"]: p["message"] for p in problems})

    @property
    def price_limit(self) -> Decimal:
        """The largest price an order may carry (the configured bound or the safe default)."""
        return self.max_price if self.max_price is not None else money_bound(self.quote.scale)

    @property
    def quantity_limit(self) -> Decimal:
        """The largest quantity an order may carry."""
        return self.max_quantity if self.max_quantity is not None else money_bound(self.base.scale)

    @property
    def notional_limit(self) -> Decimal:
        """The largest price × quantity (and market-buy budget) an order may carry."""
        return self.max_notional if self.max_notional is not None else money_bound(self.quote.scale)


class EngineState(models.Model):
    """What the engine process persists about a market besides orders: its counters and the
    fencing token of the process that owns it (a batch commits only while its token is
    current, so a stale owner can never write after a standby took over)."""

    market = models.OneToOneField(Market, on_delete=models.PROTECT, primary_key=True, related_name="engine_state")
    command_sequence = models.BigIntegerField(default=0, help_text="Last command sequence taken by the engine.")
    book_sequence = models.BigIntegerField(default=0, help_text="Level-2 sequence after the last batch.")
    owner_token = models.CharField(max_length=64, blank=True)
    owner_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        LIMIT = "limit"
        MARKET = "market"
        STOP_LIMIT = "stop_limit"
        STOP_MARKET = "stop_market"

    class TimeInForce(models.TextChoices):
        GTC = "gtc"
        IOC = "ioc"
        FOK = "fok"
        GTD = "gtd"

    class Stp(models.TextChoices):
        CANCEL_NEWEST = "cancel_newest"
        CANCEL_OLDEST = "cancel_oldest"
        CANCEL_BOTH = "cancel_both"

    class Status(models.TextChoices):
        PENDING = "pending"
        UNTRIGGERED = "untriggered"
        OPEN = "open"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELLED = "cancelled"
        REJECTED = "rejected"

    OPEN_STATUSES = (Status.OPEN, Status.PARTIALLY_FILLED)  # resting in the book
    LIVE_STATUSES = (Status.PENDING, Status.UNTRIGGERED, Status.OPEN, Status.PARTIALLY_FILLED)
    LIMIT_TYPES = (Type.LIMIT, Type.STOP_LIMIT)  # priced: held and matched as a limit order
    STOP_TYPES = (Type.STOP_LIMIT, Type.STOP_MARKET)
    CLOSED_STATUSES = (Status.FILLED, Status.CANCELLED, Status.REJECTED)

    # No index of their own (db_index=False) on these foreign keys: composite indexes lead with
    # account and market, and nothing looks orders up by hold asset (see Meta.indexes).
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="orders", db_index=False)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="orders", db_index=False)
    client_order_id = models.CharField(max_length=36, null=True, blank=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=11, choices=Type.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    post_only = models.BooleanField(default=False)
    stp = models.CharField(max_length=13, choices=Stp.choices, default=Stp.CANCEL_NEWEST)
    price = MoneyField(null=True, blank=True)
    quantity = MoneyField(null=True, blank=True)
    quote_quantity = MoneyField(null=True, blank=True)
    stop_price = MoneyField(null=True, blank=True, help_text="Stop orders: the trade price that triggers them.")
    expire_time = models.DateTimeField(null=True, blank=True, help_text="gtd orders: cancelled (expired) at this time.")
    filled_quantity = MoneyField(default=Decimal(0))
    filled_quote = MoneyField(default=Decimal(0), help_text="Sum of price × quantity over fills.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reject_reason = models.CharField(max_length=40, blank=True)
    cancel_reason = models.CharField(max_length=40, blank=True)
    sequence = models.BigIntegerField(null=True, blank=True, help_text="Market command sequence it was taken in.")
    hold_asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+", db_index=False)
    hold_amount = MoneyField(help_text="Locked at submission (the order's maximum cost).")
    hold_remaining = MoneyField(help_text="Still locked for this order; settlement moves it down to 0.")
    close_settled = models.BooleanField(default=False, help_text="The release at closure has been applied.")
    hold_review = models.BooleanField(
        default=False, help_text="An amend changed what the order needs held: settlement releases any excess."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"],
                condition=Q(client_order_id__isnull=False),
                name="order_client_id_unique_per_account",
            ),
            models.CheckConstraint(condition=Q(hold_remaining__gte=0), name="order_hold_remaining_not_negative"),
            models.CheckConstraint(condition=Q(filled_quantity__gte=0), name="order_filled_not_negative"),
        ]
        indexes = [
            models.Index(fields=["account", "market", "status"], name="order_account_market_status"),
            models.Index(fields=["market", "status", "sequence"], name="order_market_status_seq"),
            # The closed orders settlement has still to close (CLOSED_STATUSES): its checks read
            # only these, not the market's history of closed orders.
            models.Index(fields=["market"], condition=Q(close_settled=False, status__in=["filled", "cancelled", "rejected"]),
                         name="order_close_due"),
            models.Index(fields=["market"], condition=Q(hold_review=True), name="order_hold_review"),
        ]

    def __str__(self):
        return f"order {self.pk} {self.side} {self.quantity or self.quote_quantity} {self.market_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_limit_form(self) -> bool:
        """Priced like a limit order (limit, stop_limit): held and amended as one."""
        return self.type in self.LIMIT_TYPES

    @property
    def is_closed(self) -> bool:
        return self.status in self.CLOSED_STATUSES

    @property
    def remaining_quantity(self) -> Decimal | None:
        if self.quantity is None:
            return None
        if self.status in (self.Status.CANCELLED, self.Status.REJECTED):
            return Decimal(0)
        return self.quantity - self.filled_quantity

    @property
    def average_price(self) -> Decimal | None:
        if not self.filled_quantity:
            return None
        return self.filled_quote / self.filled_quantity


class Command(models.Model):
    """An instruction for a market's engine, taken in ``id`` order: new orders and cancels
    share one sequence, so a cancel can never overtake the order it cancels."""

    class Kind(models.TextChoices):
        NEW = "new"
        CANCEL = "cancel"
        AMEND = "amend"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=6, choices=Kind.choices)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="commands")
    created_at = models.DateTimeField(auto_now_add=True)
    processed = models.BooleanField(default=False)
    result = models.CharField(max_length=40, blank=True, help_text="Engine outcome (e.g. cancelled, unknown_order).")
    reason = models.CharField(
        max_length=16, blank=True,
        help_text="A cancel's cancel_reason when it is not the owner's own (disconnect, operator).",
    )
    price = MoneyField(null=True, blank=True, help_text="An amend's new price (null: unchanged).")
    quantity = MoneyField(null=True, blank=True, help_text="An amend's new total quantity (null: unchanged).")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["market", "id"], condition=Q(processed=False), name="command_pending"),
        ]


class Trade(models.Model):
    """One match between a taker and a maker, at the maker's price."""

    # Its own index would repeat the composites of Meta.indexes, which lead with it.
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades", db_index=False)
    price = MoneyField()
    quantity = MoneyField()
    # The public ``trade_id``: 1, 2, 3… per market, given by the engine in match order (the
    # market's only writer), so a gap in what a client received means a missed trade.
    sequence = models.BigIntegerField(help_text="Per-market trade number (the public trade_id).")
    taker_side = models.CharField(max_length=4, choices=Order.Side.choices)
    taker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    maker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    settled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["market", "id"], name="trade_market_id"),
            models.Index(fields=["market", "id"], condition=Q(settled=False), name="trade_unsettled"),
            # Time-range reads (GET /markets/{symbol}/trades?start_time=, the candle backfill).
            models.Index(fields=["market", "created_at"], name="trade_market_created"),
        ]
        constraints = [models.UniqueConstraint(fields=["market", "sequence"], name="trade_market_sequence")]


class Candle(models.Model):
    """One OHLCV bar of a market's trades over ``[open_time, open_time + interval)``.

    Written by the engine in the batch transaction that writes the trades (``trading.candles``),
    so a bar never disagrees with the trades that committed; ``last_trade`` is the sequence of
    the newest trade it includes (the backfill resumes after it).
    """

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    interval = models.CharField(max_length=3)
    open_time = models.DateTimeField()
    open = MoneyField()
    high = MoneyField()
    low = MoneyField()
    close = MoneyField()
    volume = MoneyField()
    quote_volume = MoneyField()
    trades = models.BigIntegerField()
    last_trade = models.BigIntegerField()

    class Meta:
        ordering = ["market", "interval", "open_time"]
        constraints = [
            models.UniqueConstraint(fields=["market", "interval", "open_time"], name="candle_market_interval_time"),
        ]


class Fill(models.Model):
    """One side of a trade, as its account sees it."""

    class Liquidity(models.TextChoices):
        MAKER = "maker"
        TAKER = "taker"

    # No index of their own: fill_one_per_trade_side leads with trade, fill_account_id with
    # account, and nothing looks fills up by fee asset.
    trade = models.ForeignKey(Trade, on_delete=models.PROTECT, related_name="fills", db_index=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="fills", db_index=False)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=Order.Side.choices)
    price = MoneyField()
    quantity = MoneyField()
    fee = MoneyField()
    fee_asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+", db_index=False)
    liquidity = models.CharField(max_length=5, choices=Liquidity.choices)
    order_remaining = MoneyField(null=True, help_text="The order's unfilled quantity right after this fill.")
    settled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["trade", "liquidity"], name="fill_one_per_trade_side")]
        indexes = [models.Index(fields=["account", "id"], name="fill_account_id")]


class OutboxEvent(models.Model):
    """Events a transaction published, persisted in that transaction (for WebSocket fan-out
    and resume). ``account`` is null for public market data.

    ``sequence`` is the market's book sequence for ``book`` events and the account's own
    sequence on that channel for private ones (``orders``, ``fills``, ``balances``; assigned
    by ``trading.outbox.services.outbox_write`` from ``AccountSequence``); null for ``trades``.
    ``market`` is null for events that belong to no market (a deposit's balance).
    """

    # Indexed for the public events only (outbox_public_market_id): a private event is found
    # by its account. Markets are never deleted while an order names them, and an event names
    # only a market some order is in: the foreign key's PROTECT check needs no index of its own.
    market = models.ForeignKey(Market, null=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    # outbox_account_id and outbox_account_market_id lead with it: no index of its own.
    account = models.ForeignKey("accounts.Account", null=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    channel = models.CharField(max_length=16)
    sequence = models.BigIntegerField(null=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        # Each index holds only the rows its readers look for (every event is written with
        # each index it enters): an account's events, or a market's public ones. No index on
        # created_at: retention finds old events by id (``outbox_prune``).
        indexes = [
            models.Index(fields=["account", "id"], condition=Q(account__isnull=False), name="outbox_account_id"),
            # The FIX report reader's tail: one range per (account, market) above its floor.
            models.Index(fields=["account", "market", "id"], condition=Q(account__isnull=False),
                         name="outbox_account_market_id"),
            # The relays' re-read of public market data (``events_after_id``).
            models.Index(fields=["market", "id"], condition=Q(account__isnull=True), name="outbox_public_market_id"),
            models.Index(fields=["market", "sequence"], condition=Q(channel="book"), name="outbox_book_sequence"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "channel", "sequence"], condition=Q(account__isnull=False),
                name="outbox_account_sequence",
            ),
        ]


class AccountSequence(models.Model):
    """The last sequence given to an account's events on one private channel (``orders``,
    ``fills``, ``balances``), so each channel's stream rises by exactly 1 whatever subset a
    client subscribes to. Every transaction that writes private events bumps its rows (in
    key order, so writers never deadlock); the row lock is held until commit, so sequence
    N+1 can only commit after N."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16)
    last = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "channel"], name="account_sequence_channel")]


class ReconciliationReport(models.Model):
    """One run of the ledger proof (see ``trading.reconciliation``)."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)
    ok = models.BooleanField(default=False)
    mismatches = models.PositiveIntegerField(default=0)
    checks = models.JSONField(default=list, help_text="[{check, ok, mismatches: [...]}] per check")

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"reconciliation #{self.pk} {'ok' if self.ok else f'{self.mismatches} mismatches'}"


class DeadManSwitch(models.Model):
    """The dead-man switch of one API key (``POST /cancel-after``, the WebSocket op
    ``cancel_after``): while ``trigger_at`` is set, the key's client must re-arm it before
    that moment, else every live order of the key's account placed up to then is cancelled
    with ``cancel_reason`` ``dead_man``. Kept in the database, so neither a web nor an engine
    restart loses it; the engine process fires it (``trading.services.deadman``)."""

    key = models.OneToOneField("apikeys.ApiKey", on_delete=models.CASCADE, primary_key=True, related_name="+")
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    timeout_ms = models.PositiveIntegerField(default=0, help_text="The last timeout armed (0: disarmed).")
    trigger_at = models.DateTimeField(null=True, blank=True, help_text="When it fires unless re-armed; empty: disarmed.")
    fired_at = models.DateTimeField(null=True, blank=True, help_text="When it last fired.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["trigger_at"], condition=Q(trigger_at__isnull=False), name="deadman_armed"),
        ]

    def __str__(self):
        return f"dead-man switch of {self.key_id} ({'armed' if self.trigger_at else 'disarmed'})"

"""Wire shapes of trading objects: request bodies, and the response schemas documented in
OpenAPI (responses themselves are rendered by ``trading.representations``)."""
import re

from rest_framework import serializers

from exchange import wire
from exchange.fields import DecimalStringField


class MarketSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    base = serializers.CharField(source="base_id")
    quote = serializers.CharField(source="quote_id")
    status = serializers.ChoiceField(choices=["open", "halted"])
    tick_size = serializers.SerializerMethodField()
    lot_size = serializers.SerializerMethodField()
    min_quantity = serializers.SerializerMethodField()
    min_notional = serializers.SerializerMethodField()
    maker_fee_rate = serializers.SerializerMethodField()
    taker_fee_rate = serializers.SerializerMethodField()
    max_price = serializers.SerializerMethodField()
    max_quantity = serializers.SerializerMethodField()
    max_notional = serializers.SerializerMethodField()

    def get_tick_size(self, market) -> str:
        return wire.money(market.tick_size, market.quote.scale)

    def get_lot_size(self, market) -> str:
        return wire.money(market.lot_size, market.base.scale)

    def get_min_quantity(self, market) -> str:
        return wire.money(market.min_quantity, market.base.scale)

    def get_min_notional(self, market) -> str:
        return wire.money(market.min_notional, market.quote.scale)

    def get_maker_fee_rate(self, market) -> str:
        return wire.rate(market.maker_fee_rate)

    def get_taker_fee_rate(self, market) -> str:
        return wire.rate(market.taker_fee_rate)

    def get_max_price(self, market) -> str:
        return wire.money(market.price_limit, market.quote.scale)

    def get_max_quantity(self, market) -> str:
        return wire.money(market.quantity_limit, market.base.scale)

    def get_max_notional(self, market) -> str:
        return wire.money(market.notional_limit, market.quote.scale)


# --- orders -----------------------------------------------------------------------------------
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,36}$"  # as published; the service anchors it at the true end


class StrictRegexField(serializers.RegexField):
    """A string field that takes only a JSON string (DRF would turn the number 0 into "0")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string field that takes only a JSON string (DRF would turn numbers into strings)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


ORDER_TYPES = ["limit", "market", "stop_limit", "stop_market"]
TIME_IN_FORCE = ["gtc", "ioc", "fok", "gtd"]
ORDER_STATUSES = ["pending", "untriggered", "open", "partially_filled", "filled", "cancelled", "rejected"]


class OrderSubmitSerializer(serializers.Serializer):
    """The body of POST /orders. Shapes only; the service checks the market's rules."""

    market = serializers.CharField(max_length=33)
    side = serializers.ChoiceField(choices=["buy", "sell"])
    type = serializers.ChoiceField(choices=ORDER_TYPES)
    quantity = DecimalStringField(required=False, allow_null=True)
    price = DecimalStringField(required=False, allow_null=True)
    quote_quantity = DecimalStringField(required=False, allow_null=True)
    stop_price = DecimalStringField(
        required=False, allow_null=True,
        help_text="stop_limit/stop_market: the trade price that triggers the order (buy: a trade at or above it; "
                  "sell: at or below it).",
    )
    time_in_force = serializers.ChoiceField(choices=TIME_IN_FORCE, default="gtc")
    expire_time = StrictCharField(
        required=False, allow_null=True, max_length=40, trim_whitespace=False,
        help_text="gtd only: RFC 3339 time in the future (at most BOURSE_GTD_MAX_DAYS ahead) when the order is "
                  "cancelled with cancel_reason `expired`.",
    )
    post_only = serializers.BooleanField(default=False)
    # Not trimmed: "abc\n" is refused (the pattern is anchored at the true end), never read as "abc".
    client_order_id = StrictRegexField(
        CLIENT_ORDER_ID_PATTERN, required=False, allow_null=True, trim_whitespace=False
    )
    stp = serializers.ChoiceField(choices=["cancel_newest", "cancel_oldest", "cancel_both"], default="cancel_newest")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown}, code="unknown_field")
        if isinstance(data, dict) and not isinstance(data.get("post_only", False), bool):
            raise serializers.ValidationError({"post_only": ["must be true or false"]}, code="invalid_type")
        return super().to_internal_value(data)


# The fast path of OrderSubmitSerializer: building a DRF serializer deep-copies its declared
# fields on every request (a tenth of a placement's CPU in the REST process). A body that is
# plainly well formed — each field of the exact JSON type, in the narrow shapes below, each
# decimal through the serializer's own field — gets the same validated data without it; any
# other body goes through the serializer, which gives the documented errors.
# tests/api/test_order_body.py holds the two to the same answers.
_SYMBOL = re.compile(r"\A[A-Z][A-Z0-9]{1,15}-[A-Z][A-Z0-9]{1,15}\Z")
_PRINTABLE = re.compile(r"\A[\x21-\x7e]{1,40}\Z")
_CLIENT_ORDER_ID = re.compile(r"\A[A-Za-z0-9_-]{1,36}\Z")
_SIDES, _STPS = ("buy", "sell"), ("cancel_newest", "cancel_oldest", "cancel_both")
_DECIMALS = {name: OrderSubmitSerializer._declared_fields[name]
             for name in ("quantity", "price", "quote_quantity", "stop_price")}


def _fast_order_body(data: object) -> dict | None:
    if type(data) is not dict or not data.keys() <= OrderSubmitSerializer._declared_fields.keys():
        return None
    market, side, kind = data.get("market"), data.get("side"), data.get("type")
    if type(market) is not str or not _SYMBOL.match(market) or side not in _SIDES or kind not in ORDER_TYPES \
            or type(side) is not str or type(kind) is not str:
        return None
    out: dict = {"market": market, "side": side, "type": kind}
    for name, field in _DECIMALS.items():
        if name in data:
            value = data[name]
            if value is not None:
                try:
                    value = field.to_internal_value(value)
                except serializers.ValidationError:
                    return None
            out[name] = value
    time_in_force = data.get("time_in_force", "gtc")
    if type(time_in_force) is not str or time_in_force not in TIME_IN_FORCE:
        return None
    out["time_in_force"] = time_in_force
    if "expire_time" in data:
        expire_time = data["expire_time"]
        if expire_time is not None and (type(expire_time) is not str or not _PRINTABLE.match(expire_time)):
            return None
        out["expire_time"] = expire_time
    post_only = data.get("post_only", False)
    if type(post_only) is not bool:
        return None
    out["post_only"] = post_only
    if "client_order_id" in data:
        client_order_id = data["client_order_id"]
        if client_order_id is not None and (type(client_order_id) is not str
                                            or not _CLIENT_ORDER_ID.match(client_order_id)):
            return None
        out["client_order_id"] = client_order_id
    stp = data.get("stp", "cancel_newest")
    if type(stp) is not str or stp not in _STPS:
        return None
    out["stp"] = stp
    return out


def order_submit_body(data: object) -> dict:
    """The validated body of an order submission (POST /orders, a batch's item, the WebSocket
    ``place_order``): what ``OrderSubmitSerializer`` validates, or its ValidationError."""
    fast = _fast_order_body(data)
    if fast is not None:
        return fast
    serializer = OrderSubmitSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class UnknownFieldsRefused(serializers.Serializer):
    """Refuse body fields the serializer does not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown}, code="unknown_field")
        return super().to_internal_value(data)


class OrderAmendSerializer(UnknownFieldsRefused):
    """The body of PATCH /orders/{order_id}: any of these; shapes only (the service checks the rest)."""

    price = DecimalStringField(required=False, help_text="The new limit price (loses time priority).")
    quantity = DecimalStringField(
        required=False,
        help_text="The new TOTAL quantity, filled part included; must exceed the filled quantity. A decrease at the "
                  "same price keeps time priority, an increase loses it.",
    )
    client_order_id = StrictRegexField(CLIENT_ORDER_ID_PATTERN, required=False, trim_whitespace=False,
                                       help_text="A new client order id (unique among the account's orders).")


class OrderSerializer(serializers.Serializer):
    """The order object (rendered by ``trading.representations.order_to_wire``)."""

    order_id = serializers.CharField()
    client_order_id = serializers.CharField(allow_null=True)
    market = serializers.CharField()
    side = serializers.ChoiceField(choices=["buy", "sell"])
    type = serializers.ChoiceField(choices=ORDER_TYPES)
    time_in_force = serializers.ChoiceField(choices=TIME_IN_FORCE)
    post_only = serializers.BooleanField()
    stp = serializers.ChoiceField(choices=["cancel_newest", "cancel_oldest", "cancel_both"])
    price = serializers.CharField(allow_null=True)
    quantity = serializers.CharField(allow_null=True)
    quote_quantity = serializers.CharField(allow_null=True)
    stop_price = serializers.CharField(allow_null=True, help_text="Stop orders' trigger price; null otherwise.")
    expire_time = serializers.CharField(allow_null=True, help_text="gtd orders' expiry (RFC 3339); null otherwise.")
    filled_quantity = serializers.CharField()
    remaining_quantity = serializers.CharField(allow_null=True)
    average_price = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=ORDER_STATUSES)
    reject_reason = serializers.CharField(allow_null=True)
    cancel_reason = serializers.CharField(
        allow_null=True,
        help_text="Why a cancelled order was cancelled: `user` (its owner), `ioc`/`fok` (time in force), `stp` "
                  "(self-trade prevention), `expired` (gtd), `dead_man`, `disconnect`, `operator`, `market_halted`, "
                  "`market_no_liquidity`/`budget` (a market order's remainder).",
    )
    created_at = serializers.CharField()
    updated_at = serializers.CharField()


class FillSerializer(serializers.Serializer):
    fill_id = serializers.CharField()
    trade_id = serializers.CharField()
    order_id = serializers.CharField()
    client_order_id = serializers.CharField(allow_null=True)
    market = serializers.CharField()
    side = serializers.ChoiceField(choices=["buy", "sell"])
    price = serializers.CharField()
    quantity = serializers.CharField()
    fee = serializers.CharField()
    fee_asset = serializers.CharField()
    liquidity = serializers.ChoiceField(choices=["maker", "taker"])
    created_at = serializers.CharField()
    settled = serializers.BooleanField()


class TradeSerializer(serializers.Serializer):
    trade_id = serializers.CharField(help_text="1, 2, 3… per market, in match order.")
    market = serializers.CharField()
    price = serializers.CharField()
    quantity = serializers.CharField()
    taker_side = serializers.ChoiceField(choices=["buy", "sell"])
    created_at = serializers.CharField()


class BookSerializer(serializers.Serializer):
    market = serializers.CharField()
    sequence = serializers.IntegerField()
    bids = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class TickerSerializer(serializers.Serializer):
    market = serializers.CharField()
    last_price = serializers.CharField(allow_null=True)
    last_trade_at = serializers.CharField(allow_null=True)
    best_bid = serializers.CharField(allow_null=True)
    best_ask = serializers.CharField(allow_null=True)
    open_24h = serializers.CharField(allow_null=True)
    high_24h = serializers.CharField(allow_null=True)
    low_24h = serializers.CharField(allow_null=True)
    volume_24h = serializers.CharField()
    quote_volume_24h = serializers.CharField()
    sequence = serializers.IntegerField()


class CandleSerializer(serializers.Serializer):
    open_time = serializers.CharField(help_text="Start of the bar (RFC 3339, UTC-aligned).")
    open = serializers.CharField()
    high = serializers.CharField()
    low = serializers.CharField()
    close = serializers.CharField()
    volume = serializers.CharField(help_text="Base quantity traded.")
    quote_volume = serializers.CharField(help_text="Sum of price × quantity.")
    trades = serializers.IntegerField(help_text="Number of trades in the bar.")


class AssetSerializer(serializers.Serializer):
    symbol = serializers.CharField(source="code")
    decimals = serializers.IntegerField(source="scale", help_text="Decimal places amounts of this asset carry.")


class PositionSerializer(serializers.Serializer):
    market = serializers.CharField()
    base = serializers.CharField()
    quote = serializers.CharField()
    net_quantity = serializers.CharField()
    average_entry_price = serializers.CharField(allow_null=True)
    mark_price = serializers.CharField(allow_null=True)
    realized_pnl = serializers.CharField()
    unrealized_pnl = serializers.CharField()
    fees_paid = serializers.CharField()


class CancelAllSerializer(serializers.Serializer):
    cancelled = serializers.ListField(child=serializers.CharField())

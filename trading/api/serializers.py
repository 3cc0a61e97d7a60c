"""Wire representations of trading objects (output side)."""
from rest_framework import serializers

from exchange import wire


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

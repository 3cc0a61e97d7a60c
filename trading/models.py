"""Markets (and, as the order lifecycle lands, orders and fills)."""
from decimal import Decimal

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from accounts.models import Asset, MoneyField

FEE_RATE_PLACES = 6


class Market(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HALTED = "halted", "Halted"

    symbol = models.CharField(
        max_length=33,
        unique=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9]{1,15}-[A-Z][A-Z0-9]{1,15}$", "Symbols look like BASE-QUOTE.")],
    )
    base = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="base_markets")
    quote = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="quote_markets")
    tick_size = MoneyField(help_text="Prices must be multiples of this (in the quote asset).")
    lot_size = MoneyField(help_text="Quantities must be multiples of this (in the base asset).")
    min_quantity = MoneyField(default=Decimal(0))
    min_notional = MoneyField(default=Decimal(0), help_text="Smallest price × quantity, in the quote asset.")
    maker_fee_rate = models.DecimalField(max_digits=8, decimal_places=FEE_RATE_PLACES, default=Decimal(0))
    taker_fee_rate = models.DecimalField(max_digits=8, decimal_places=FEE_RATE_PLACES, default=Decimal(0))
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

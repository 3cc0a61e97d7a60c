"""Market creation, the create_market command, and halting."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Asset
from exchange import errors
from trading.models import Market
from trading.services import market_create, market_set_status

pytestmark = pytest.mark.django_db


def test_create_market_creates_assets_and_is_idempotent():
    out = StringIO()
    call_command(
        "create_market", "ETH-EUR", "--tick-size", "0.01", "--lot-size", "0.001", "--min-notional", "5",
        "--maker-fee", "0.001", "--taker-fee", "0.002", stdout=out,
    )
    assert "Created market ETH-EUR" in out.getvalue()
    market = Market.objects.get(symbol="ETH-EUR")
    assert (market.base_id, market.quote_id, str(market.min_notional.normalize())) == ("ETH", "EUR", "5")
    # EUR carries tick × lot = 0.00001 exactly, so every notional is exact.
    assert Asset.objects.get(code="ETH").scale == 3 and Asset.objects.get(code="EUR").scale == 5

    again = StringIO()
    call_command("create_market", "ETH-EUR", "--tick-size", "1", "--lot-size", "1", stdout=again)
    assert "already exists; nothing changed" in again.getvalue()
    market.refresh_from_db()
    assert str(market.tick_size.normalize()) == "0.01"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"symbol": "BTCUSD"}, "symbol"),
        ({"symbol": "btc-"}, "symbol"),
        ({"tick_size": "0"}, "tick_size"),
        ({"lot_size": "-1"}, "lot_size"),
        ({"taker_fee_rate": "1.5"}, "taker_fee_rate"),
        ({"min_notional": "-1"}, "min_notional"),
    ],
)
def test_create_market_refusals_write_nothing(kwargs, field):
    args = {"symbol": "SOL-USD", "tick_size": "0.01", "lot_size": "0.1", **kwargs}
    with pytest.raises(errors.ValidationError) as refused:
        market_create(**args)
    assert refused.value.errors[0]["field"] == field
    assert not Market.objects.exists() and not Asset.objects.exists()


def test_create_market_command_reports_errors():
    with pytest.raises(CommandError, match="tick_size must be positive"):
        call_command("create_market", "SOL-USD", "--tick-size", "0", "--lot-size", "1")


def test_tick_size_finer_than_existing_asset_is_refused(usd):
    # USD has 6 decimals; 0.001 × 0.0001 needs 7.
    with pytest.raises(errors.ValidationError) as refused:
        market_create(symbol="BTC-USD", tick_size="0.001", lot_size="0.0001")
    assert refused.value.errors[0]["code"] == "precision"
    assert not Market.objects.exists()


def test_halt_and_resume(market):
    assert market_set_status(symbol=market.symbol, status="halted").status == "halted"
    assert Market.objects.get(pk=market.pk).status == "halted"
    assert market_set_status(symbol=market.symbol, status="open").status == "open"
    with pytest.raises(errors.MarketNotFound):
        market_set_status(symbol="NOPE-USD", status="halted")

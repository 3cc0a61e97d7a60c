"""Market filters: each refusal names the filter and the allowed value."""
from decimal import Decimal

import pytest

from exchange import errors
from trading.filters import market_check_limit, market_check_quantity, market_check_quote_quantity

pytestmark = pytest.mark.django_db


def refusal(call):
    with pytest.raises(errors.ValidationError) as excinfo:
        call()
    return excinfo.value.errors


def test_valid_limit_passes(market):
    market_check_limit(market, price=Decimal("100.01"), quantity=Decimal("0.0100"))


def test_tick_size(market):
    assert refusal(lambda: market_check_limit(market, price=Decimal("100.005"), quantity=Decimal("1"))) == [
        {"field": "price", "code": "tick_size", "message": "price must be a multiple of 0.01", "allowed": "0.01"}
    ]


def test_lot_size(market):
    assert refusal(lambda: market_check_limit(market, price=Decimal("100"), quantity=Decimal("0.00015"))) == [
        {"field": "quantity", "code": "lot_size", "message": "quantity must be a multiple of 0.0001", "allowed": "0.0001"}
    ]


def test_min_quantity(market):
    market.min_quantity = Decimal("0.01")
    assert refusal(lambda: market_check_quantity(market, quantity=Decimal("0.0050"))) == [
        {"field": "quantity", "code": "min_quantity", "message": "quantity must be at least 0.01", "allowed": "0.01"}
    ]


def test_min_notional(market):
    # 50.00 × 0.0100 = 0.50 < 1 USD
    assert refusal(lambda: market_check_limit(market, price=Decimal("50"), quantity=Decimal("0.0100"))) == [
        {
            "field": "quantity",
            "code": "min_notional",
            "message": "price × quantity must be at least 1 USD",
            "allowed": "1",
        }
    ]


def test_several_failures_are_reported_together(market):
    codes = [e["code"] for e in refusal(lambda: market_check_limit(market, price=Decimal("1.001"), quantity=Decimal("0.00001")))]
    assert codes == ["tick_size", "lot_size", "min_quantity"]


@pytest.mark.parametrize("price", [Decimal("0"), Decimal("-1")])
def test_non_positive_price(market, price):
    assert refusal(lambda: market_check_limit(market, price=price, quantity=Decimal("1")))[0]["code"] == "invalid"


def test_quote_quantity_precision_and_notional(market):
    assert refusal(lambda: market_check_quote_quantity(market, quote_quantity=Decimal("10.0000001")))[0]["code"] == "precision"
    assert refusal(lambda: market_check_quote_quantity(market, quote_quantity=Decimal("0.50")))[0]["code"] == "min_notional"
    market_check_quote_quantity(market, quote_quantity=Decimal("25.00"))

"""Money has bounds: every market caps price, quantity and notional (configured, or a safe
default derived from the assets' decimals and the money columns), on every transport, and
no money value is ever written that the database could not give back exactly."""
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from accounts.models import Balance, LedgerEntry, MoneyNotStorable, money_bound, money_storable
from accounts.services import balance_deposit
from exchange import errors
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import balances, fund
from trading.fix import application
from trading.fix.codec import Message
from trading.models import Market, Order
from trading.services import market_create, order_submit

pytestmark = pytest.mark.django_db

# The order that used to stop the embedded exchange for good: accepted, stored on SQLite as a
# float that can never be read back, and the engine crash-looped on it.
HUGE = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "99999999999999999999.99", "quantity": "1.0000"}


@pytest.fixture(autouse=True)
def no_wait(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return account


def test_default_bounds_follow_the_assets_decimals_and_the_columns():
    exact = 15 if connection.vendor == "sqlite" else 38
    # three digits of headroom below what one amount of that scale can hold exactly
    assert money_bound(6) == D(10) ** (min(20, exact - 6) - 3)
    assert money_bound(8) == D(10) ** (min(20, exact - 8) - 3)
    largest = money_bound(6) * 1000 - D("0.000001")
    assert money_storable(largest) and not money_storable(D(10) ** 20)
    assert money_storable(D("1234567890.12345")) and money_storable(D("100000000000000000000").scaleb(-1))
    assert money_storable(D("1234567890.123456")) is (connection.vendor != "sqlite")


def test_the_crash_order_is_a_400_naming_the_limit_and_writes_nothing(alice, market):
    client = SignedClient(ApiKeyFactory(account=alice))
    before = balances(alice)
    response = client.post("/api/v1/orders", json=HUGE)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    limit = format(market.price_limit.normalize(), "f")
    assert body["errors"] == [
        {"field": "price", "code": "max_price", "message": f"price must be at most {limit}", "allowed": limit}
    ]
    assert Order.objects.count() == 0 and balances(alice) == before


@pytest.mark.parametrize(
    "bounds, body, field, code, allowed",
    [
        ({"max_price": D("500")}, {"price": "500.01", "quantity": "0.0100"}, "price", "max_price", "500"),
        ({"max_quantity": D("2")}, {"price": "10.00", "quantity": "2.0001"}, "quantity", "max_quantity", "2"),
        ({"max_notional": D("100")}, {"price": "100.00", "quantity": "1.0001"}, "quantity", "max_notional", "100"),
        ({"max_notional": D("100")}, {"type": "market", "quote_quantity": "100.01"}, "quote_quantity", "max_notional", "100"),
        ({"max_quantity": D("2")}, {"type": "market", "side": "sell", "quantity": "2.0001"}, "quantity", "max_quantity", "2"),
    ],
)
def test_configured_bounds_are_enforced_on_rest(alice, market, bounds, body, field, code, allowed):
    Market.objects.filter(pk=market.pk).update(**bounds)
    client = SignedClient(ApiKeyFactory(account=alice))
    response = client.post("/api/v1/orders", json={"market": "BTC-USD", "side": "buy", "type": "limit", **body})
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [(e["field"], e["code"], e["allowed"]) for e in problem["errors"]] == [(field, code, allowed)]
    assert Order.objects.count() == 0
    # exactly at the bound is accepted
    at = {**body}
    if code == "max_price":
        at["price"] = allowed + ".00"
    elif code == "max_quantity":
        at["quantity"] = allowed + ".0000"
    elif field == "quote_quantity":
        at["quote_quantity"] = allowed + ".00"
    else:
        at["quantity"] = "1.0000"
    response = client.post("/api/v1/orders", json={"market": "BTC-USD", "side": "buy", "type": "limit", **at})
    assert response.status_code in (201, 202), response.content


def _fix_order(tags: dict) -> Message:
    fields = {35: "D", 11: "fix-1", 55: "BTC-USD", 54: "1", 60: "20261205-10:00:00.000", 40: "2", 38: "1", 44: "100"}
    fields.update(tags)
    return Message([(tag, value) for tag, value in fields.items()])


def test_fix_refuses_beyond_the_bounds_through_the_same_service(alice, market):
    outcome = application.new_order_single(alice, _fix_order({44: HUGE["price"]}))
    [(msg_type, report)] = outcome.messages
    text = dict(report)[58]
    limit = format(market.price_limit.normalize(), "f")
    assert msg_type == "8" and dict(report)[39] == "8"  # rejected
    assert text == f"validation_error: price must be at most {limit}"
    Market.objects.filter(pk=market.pk).update(max_quantity=D("2"))
    outcome = application.new_order_single(alice, _fix_order({38: "3"}))
    assert dict(outcome.messages[0][1])[58] == "validation_error: quantity must be at most 2"
    assert Order.objects.count() == 0


def test_a_value_the_database_cannot_hold_exactly_is_refused_not_rounded(alice, usd):
    # SQLite keeps 15 significant digits; PostgreSQL's numeric(38, 18) 20 before the point.
    amount = "1234567890.123456" if connection.vendor == "sqlite" else "123456789012345678901"
    entries = LedgerEntry.objects.count()
    before = balances(alice)
    with pytest.raises(MoneyNotStorable) as refused:
        balance_deposit(account=alice, asset="USD", amount=amount)
    assert refused.value.code == "validation_error" and refused.value.errors[0]["code"] == "not_storable"
    assert LedgerEntry.objects.count() == entries and balances(alice) == before
    # and a direct write of such a value never reaches the database either
    with pytest.raises(MoneyNotStorable), transaction.atomic():
        Balance.objects.filter(account=alice, asset="USD").update(available=D(amount))
    assert balances(alice) == before


def test_a_balance_that_would_overflow_is_refused_on_every_configuration(usd):
    # Deposits that each fit, summing past what the column holds exactly.
    carol = AccountFactory(name="carol")
    balance_deposit(account=carol, asset="USD", amount=str(money_bound(6) * 1000 - 1))
    with pytest.raises(MoneyNotStorable) as refused:
        balance_deposit(account=carol, asset="USD", amount="1.000001")
    assert refused.value.errors[0]["field"] == "USD available balance"


def test_bounds_are_configurable_per_market_within_what_the_columns_hold(db):
    market, _ = market_create(symbol="ETH-EUR", tick_size="0.01", lot_size="0.001", max_price="5000", max_quantity="10")
    assert (market.price_limit, market.quantity_limit) == (D("5000"), D("10"))
    assert market.notional_limit == money_bound(market.quote.scale)
    ceiling = money_bound(market.quote.scale) * 1000
    with pytest.raises(errors.ValidationError) as refused:
        market_create(symbol="ETH-CHF", tick_size="0.01", lot_size="0.001", max_notional=str(ceiling))
    assert refused.value.errors[0]["code"] == "max_notional"
    assert not Market.objects.filter(symbol="ETH-CHF").exists()
    with pytest.raises(CommandError, match="max_price must be positive"):
        call_command("create_market", "SOL-USD", "--tick-size", "0.01", "--lot-size", "0.01", "--max-price", "0")
    call_command("create_market", "SOL-USD", "--tick-size", "0.01", "--lot-size", "0.01", "--max-quantity", "100")
    assert Market.objects.get(symbol="SOL-USD").max_quantity == D("100")


def test_the_service_path_refuses_for_every_transport(alice, market):
    with pytest.raises(errors.ValidationError) as refused:
        order_submit(account=alice, **HUGE)
    assert refused.value.errors[0]["code"] == "max_price"

"""A market's filters change only through ``market_update``: the console runs the creation
checks, tick and lot size cannot change under live orders, every edit is audited, and the
engine refuses a book whose tick/lot no longer fit its orders rather than misprice them."""
from decimal import Decimal as D

import pytest

from audit.models import AuditEvent
from exchange import errors
from tests.audit.conftest import _client, _staff
from tests.factories import AccountFactory
from tests.support import fund
from trading.models import Market, Order, Trade
from trading.services import market_update, order_cancel, order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="100000", BTC="10")
    return account


def sell(account, price, quantity="1.0000"):
    return order_submit(account=account, market="BTC-USD", side="sell", type="limit", price=price,
                        quantity=quantity).order


def test_update_checks_like_creation_and_writes_nothing_when_refused(market):
    for changes, field, code in (
        ({"tick_size": "0"}, "tick_size", "invalid"),
        ({"lot_size": "-0.1"}, "lot_size", "invalid"),
        ({"taker_fee_rate": "1"}, "taker_fee_rate", "invalid"),
        ({"min_notional": "-1"}, "min_notional", "invalid"),
        # USD has 6 decimals; 0.001 × 0.0001 needs 7: notionals would not be exact.
        ({"tick_size": "0.001"}, "tick_size", "precision"),
        ({"status": "halted"}, "status", "not_allowed"),
    ):
        with pytest.raises(errors.ValidationError) as refused:
            market_update(symbol="BTC-USD", **changes)
        assert (refused.value.errors[0]["field"], refused.value.errors[0]["code"]) == (field, code)
    market.refresh_from_db()
    assert (market.tick_size, market.lot_size, market.taker_fee_rate) == (D("0.01"), D("0.0001"), D("0.002"))
    assert not AuditEvent.objects.filter(action="market.updated").exists()


def test_tick_and_lot_cannot_change_under_live_orders_but_fees_can(market, alice, runner):
    order = sell(alice, "100.05")
    with pytest.raises(errors.ValidationError) as refused:
        market_update(symbol="BTC-USD", tick_size="0.05")
    assert refused.value.errors[0]["code"] == "live_orders"
    runner.step()  # now open, still live
    with pytest.raises(errors.ValidationError):
        market_update(symbol="BTC-USD", lot_size="0.001")
    market_update(symbol="BTC-USD", min_notional="2", maker_fee_rate="0.0005")  # units unchanged: allowed

    # the defined procedure: cancel every live order, change, trade again
    order_cancel(account=alice, order_id=order.pk)
    runner.step()
    market_update(symbol="BTC-USD", tick_size="0.05")
    market.refresh_from_db()
    assert (market.tick_size, market.min_notional, market.maker_fee_rate) == (D("0.05"), D("2"), D("0.0005"))
    events = list(AuditEvent.objects.filter(action="market.updated").order_by("id"))
    assert [(set(e.before), set(e.after)) for e in events] == [
        ({"min_notional", "maker_fee_rate"}, {"min_notional", "maker_fee_rate"}), ({"tick_size"}, {"tick_size"})
    ]
    assert D(events[1].before["tick_size"]) == D("0.01") and D(events[1].after["tick_size"]) == D("0.05")


def test_console_edit_runs_the_service_checks_and_is_audited(market):
    client = _client(_staff("root-op", superuser=True))
    url = f"/admin/trading/market/{market.pk}/change/"
    form = {"tick_size": "0.01", "lot_size": "0.0001", "min_quantity": "0.0001", "min_notional": "1",
            "maker_fee_rate": "0.001", "taker_fee_rate": "0.002"}

    # a tick size the quote asset cannot represent exactly (market_create refuses it)
    response = client.post(url, {**form, "tick_size": "0.001"})
    assert response.status_code == 200 and "needs 7" in response.content.decode()
    market.refresh_from_db()
    assert market.tick_size == D("0.01")

    response = client.post(url, {**form, "taker_fee_rate": "0.003"})
    assert response.status_code == 302
    market.refresh_from_db()
    assert market.taker_fee_rate == D("0.003")
    event = AuditEvent.objects.get(action="market.updated")
    assert event.actor_label == "root-op" and set(event.after) == {"taker_fee_rate"}
    assert not AuditEvent.objects.filter(action="admin.changed").exists()  # audited once, by the service


def test_console_refuses_a_tick_change_under_a_live_order(market, alice):
    sell(alice, "100.05")
    client = _client(_staff("root-op", superuser=True))
    response = client.post(f"/admin/trading/market/{market.pk}/change/", {
        "tick_size": "0.05", "lot_size": "0.0001", "min_quantity": "0.0001", "min_notional": "1",
        "maker_fee_rate": "0.001", "taker_fee_rate": "0.002"})
    assert response.status_code == 200 and "live order" in response.content.decode()
    market.refresh_from_db()
    assert market.tick_size == D("0.01")


def test_console_add_goes_through_market_create(db, usd):
    client = _client(_staff("root-op", superuser=True))
    form = {"symbol": "ETH-USD", "tick_size": "0.01", "lot_size": "0.001", "min_quantity": "0",
            "min_notional": "0", "maker_fee_rate": "0", "taker_fee_rate": "0"}
    response = client.post("/admin/trading/market/add/", {**form, "tick_size": "0.0001"})  # USD 6 < 7 places
    assert response.status_code == 200 and not Market.objects.filter(symbol="ETH-USD").exists()
    assert client.post("/admin/trading/market/add/", form).status_code == 302
    market = Market.objects.get(symbol="ETH-USD")
    assert (market.base_id, market.quote_id) == ("ETH", "USD")
    assert AuditEvent.objects.filter(action="market.created").count() == 1


def _bypass(market, **values):
    """A change that did not go through market_update (raw SQL, an old console)."""
    Market.objects.filter(pk=market.pk).update(**values)


def test_engine_refuses_a_book_whose_units_no_longer_fit(market, alice, runner):
    sell(alice, "100.03")
    runner.step()
    _bypass(market, tick_size=D("0.05"))  # 100.03 is not a multiple of 0.05
    bob = AccountFactory()
    fund(bob, USD="100000")
    buy = order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="600.00",
                       quantity="1.0000").order
    runner._market_read_at = 0  # the next step re-reads the market
    assert runner.step() == 0
    assert runner.refused and not Trade.objects.exists()
    buy.refresh_from_db()
    assert buy.status == Order.Status.PENDING

    _bypass(market, tick_size=D("0.01"))  # put back: the engine runs the book again
    runner._market_read_at = 0
    assert runner.step() == 1
    assert runner.refused is None
    assert [t.price for t in Trade.objects.all()] == [D("100.03")]


def test_engine_recounts_the_book_when_units_change_and_still_fit(market, alice, runner):
    sell(alice, "100.05")
    runner.step()
    _bypass(market, tick_size=D("0.05"))  # 100.05 = 2001 ticks of 0.05 (10005 of the old 0.01)
    bob = AccountFactory()
    fund(bob, USD="100000")
    order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="600.00", quantity="1.0000")
    runner._market_read_at = 0
    runner.step()
    # the old engine read 10005 ticks × 0.05 = 500.25 and traded there
    assert [t.price for t in Trade.objects.all()] == [D("100.05")]

"""OrderCancelReplaceRequest (G) with amend semantics, stop orders (OrdType 3/4 with StopPx)
and good-till-date (TimeInForce 6 with ExpireTime), with QuickFIX as the initiator (validation
on, Bourse's data dictionary) against a running gateway and engine."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import quickfix as fix

from tests.factories import AccountFactory, ApiKeyFactory, AssetFactory, MarketFactory
from tests.support import fund
from trading.models import Order
from trading.services import order_submit

from .support import Processes, QuickFixClient, qf_new_order, qf_replace, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def fix_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@pytest.fixture
def world():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    key = ApiKeyFactory(label="alice")
    fund(key.account, USD="100000", BTC="100")
    maker, taker = AccountFactory(), AccountFactory()
    for account in (maker, taker):
        fund(account, USD="100000", BTC="100")
    processes = Processes()
    client = QuickFixClient(key, processes.port)
    assert client.start(), processes.output()
    yield client, maker, taker
    client.stop()
    print(processes.stop())


def test_cancel_replace_amends_in_place(world):
    client, maker, _ = world
    client.send(qf_new_order("r-1", fix.Side_BUY, "1.0000", "100.00"))
    new = client.next_app(msg_type="8")
    order_id = new.get(37)
    client.send(qf_new_order("r-2", fix.Side_BUY, "1.0000", "100.00"))
    second = client.next_app(msg_type="8").get(37)

    # quantity down: Replaced, same OrderID, the new ClOrdID; it keeps its place ahead of r-2
    client.send(qf_replace("r-1b", "r-1", fix.Side_BUY, "0.6000", "100.00"))
    replaced = client.next_app(msg_type="8")
    assert (replaced.get(150), replaced.get(39), replaced.get(37), replaced.get(11), replaced.get(41)) == (
        "5", "0", order_id, "r-1b", "r-1")
    assert D(replaced.get(38)) == D("0.6") and D(replaced.get(151)) == D("0.6")
    order = Order.objects.get(pk=order_id)
    assert (order.quantity, order.client_order_id) == (D("0.6"), "r-1b")
    order_submit(account=maker, market="BTC-USD", side="sell", type="limit", quantity="0.5000", price="100.00",
                 time_in_force="ioc", wait=10)
    trade = client.next_app(msg_type="8")
    assert (trade.get(150), trade.get(37), trade.get(11)) == ("F", order_id, "r-1b")
    assert Order.objects.get(pk=second).filled_quantity == 0

    # a price change: Replaced with the new price
    client.send(qf_replace("r-1c", "r-1b", fix.Side_BUY, "0.6000", "99.00"))
    replaced = client.next_app(msg_type="8")
    assert (replaced.get(150), replaced.get(39), replaced.get(11), replaced.get(41)) == ("5", "1", "r-1c", "r-1b")
    assert D(replaced.get(44)) == D(99) and D(replaced.get(14)) == D("0.5") and D(replaced.get(151)) == D("0.1")

    # only the ClOrdID: Replaced at once (nothing changes in the book)
    client.send(qf_replace("r-1d", "r-1c", fix.Side_BUY, "0.6000", "99.00"))
    replaced = client.next_app(msg_type="8")
    assert (replaced.get(150), replaced.get(11), replaced.get(41)) == ("5", "r-1d", "r-1c")

    # refusals: OrderCancelReject with CxlRejResponseTo 2
    client.send(qf_replace("r-x1", "never", fix.Side_BUY, "0.6000", "99.00"))
    refused = client.next_app(msg_type="9")
    assert (refused.get(434), refused.get(102), refused.get(37)) == ("2", "1", "NONE")
    client.send(qf_replace("r-x2", "r-1d", fix.Side_BUY, "0.5000", "99.00"))  # at the filled quantity
    refused = client.next_app(msg_type="9")
    assert (refused.get(434), refused.get(102)) == ("2", "99") and refused.get(58).startswith("validation_error")
    client.send(qf_replace("r-x3", "r-1d", fix.Side_SELL, "0.6000", "99.00"))  # the side cannot change
    assert client.next_app(msg_type="9").get(58).startswith("validation_error")
    assert Order.objects.get(pk=order_id).client_order_id == "r-1d"
    assert client.no_app_message(0.3)


def test_stop_orders_and_gtd(world):
    client, maker, taker = world
    stop = qf_new_order("s-1", fix.Side_BUY, "0.2000", "102.50", ord_type=fix.OrdType_STOP_LIMIT)
    stop.setField(fix.StringField(99, "102.00"))
    client.send(stop)
    new = client.next_app(msg_type="8")
    assert (new.get(150), new.get(39), new.get(40), D(new.get(99))) == ("0", "0", "4", D(102))
    order_id = new.get(37)
    assert Order.objects.get(pk=order_id).status == "untriggered"
    order_submit(account=maker, market="BTC-USD", side="sell", type="limit", quantity="0.1000", price="102.00", wait=10)
    order_submit(account=taker, market="BTC-USD", side="buy", type="limit", quantity="0.1000", price="102.00", wait=10)
    assert wait_for(lambda: Order.objects.get(pk=order_id).status == "open")

    market_stop = qf_new_order("s-2", fix.Side_SELL, "0.1000", None, ord_type=fix.OrdType_STOP)
    market_stop.setField(fix.StringField(99, "90.00"))
    client.send(market_stop)
    assert client.next_app(msg_type="8").get(40) == "3"

    expire = datetime.now(UTC) + timedelta(seconds=2)
    gtd = qf_new_order("g-1", fix.Side_BUY, "0.1000", "90.00", tif=fix.TimeInForce_GOOD_TILL_DATE)
    gtd.setField(fix.StringField(126, fix_time(expire)))
    client.send(gtd)
    new = client.next_app(msg_type="8")
    assert (new.get(150), new.get(59), new.get(126)) == ("0", "6", fix_time(expire))
    expired = client.next_app(timeout=15, msg_type="8")
    assert (expired.get(150), expired.get(11), expired.get(58)) == ("4", "g-1", "expired")

    # a stop without StopPx, a GTD without ExpireTime: session-level Rejects naming the tag
    client.send(qf_new_order("s-3", fix.Side_BUY, "0.1000", "100.00", ord_type=fix.OrdType_STOP_LIMIT))
    client.send(qf_new_order("g-2", fix.Side_BUY, "0.1000", "90.00", tif=fix.TimeInForce_GOOD_TILL_DATE))
    rejects = []
    while len(rejects) < 2:  # the admin queue holds the Logon and any heartbeat too
        message = client.app.admin_messages.get(timeout=5)
        if message.msg_type == "3":
            rejects.append(message)
    assert sorted(m.get(371) for m in rejects) == ["126", "99"]
    # an expire time in the past: refused by the service, as on REST
    late = qf_new_order("g-3", fix.Side_BUY, "0.1000", "90.00", tif=fix.TimeInForce_GOOD_TILL_DATE)
    late.setField(fix.StringField(126, fix_time(datetime.now(UTC) - timedelta(seconds=5))))
    client.send(late)
    rejected = client.next_app(msg_type="8")
    assert (rejected.get(150), rejected.get(11)) == ("8", "g-3") and rejected.get(58).startswith("validation_error")

"""OrderMassCancelRequest (q) -> OrderMassCancelReport (r), with QuickFIX as the initiator
(validation on, Bourse's data dictionary) against a running gateway and engine."""
import pytest
import quickfix as fix

from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.fix.test_dictionary import validate
from tests.support import fund
from trading.fix import reports
from trading.models import Order

from .support import Processes, QuickFixClient, qf_new_order, wait_for


def qf_mass_cancel(cl_ord_id, request_type, symbol=None):
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(fix.MsgType_OrderMassCancelRequest))
    message.setField(fix.ClOrdID(cl_ord_id))
    message.setField(fix.MassCancelRequestType(request_type))
    if symbol is not None:
        message.setField(fix.Symbol(symbol))
    message.setField(fix.TransactTime())
    return message


def test_the_mass_cancel_report_validates_against_the_dictionary():
    validate("r", reports.mass_cancel_report(cl_ord_id="m1", request_type="7", symbol=None, cancelled=3))
    validate("r", reports.mass_cancel_report(cl_ord_id="m2", request_type="3", symbol="BTC-USD", cancelled=None,
                                             reject_reason="0", code="validation_error", message="not supported"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_mass_cancel_by_symbol_and_all():
    usd, btc, eth = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8), AssetFactory(code="ETH", scale=8)
    MarketFactory(base=btc, quote=usd)
    MarketFactory(base=eth, quote=usd)
    key = ApiKeyFactory(label="alice")
    fund(key.account, USD="100000", BTC="100", ETH="100")
    processes = Processes(markets=("BTC-USD", "ETH-USD"))
    client = QuickFixClient(key, processes.port)
    try:
        assert client.start(), processes.output()
        for cl, symbol, price in (("b-1", "BTC-USD", "90.00"), ("b-2", "BTC-USD", "91.00"), ("e-1", "ETH-USD", "10.00")):
            client.send(qf_new_order(cl, fix.Side_BUY, "1.0000", price, symbol=symbol))
            assert client.next_app(msg_type="8").get(150) == "0"

        # one market's orders: the report, then each order's Canceled
        client.send(qf_mass_cancel("mc-1", "1", "BTC-USD"))
        got = [client.next_app() for _ in range(3)]
        report = next(m for m in got if m.msg_type == "r")
        assert (report.get(11), report.get(530), report.get(531), report.get(533), report.get(55)) == (
            "mc-1", "1", "1", "2", "BTC-USD")
        cancelled = sorted(m.get(11) for m in got if m.msg_type == "8")
        assert cancelled == ["b-1", "b-2"] and all(m.get(150) == "4" for m in got if m.msg_type == "8")
        assert wait_for(lambda: set(Order.objects.filter(market__symbol="BTC-USD").values_list("status", flat=True))
                        == {"cancelled"})
        assert Order.objects.get(client_order_id="e-1").status == "open"

        # refusals: an unknown symbol, a request type Bourse does not do
        client.send(qf_mass_cancel("mc-2", "1", "DOGE-USD"))
        refused = client.next_app(msg_type="r")
        assert (refused.get(531), refused.get(532)) == ("0", "1") and refused.get(58).startswith("market_not_found")
        client.send(qf_mass_cancel("mc-3", "3", "BTC-USD"))
        unsupported = client.next_app(msg_type="r")
        assert (unsupported.get(530), unsupported.get(531), unsupported.get(532)) == ("3", "0", "0")

        # everything that is left
        client.send(qf_mass_cancel("mc-4", "7"))
        got = [client.next_app() for _ in range(2)]
        report = next(m for m in got if m.msg_type == "r")
        assert (report.get(531), report.get(533)) == ("7", "1")
        assert next(m for m in got if m.msg_type == "8").get(11) == "e-1"
        assert wait_for(lambda: Order.objects.get(client_order_id="e-1").status == "cancelled")
        client.send(qf_mass_cancel("mc-5", "7"))
        assert client.next_app(msg_type="r").get(533) == "0"
        assert client.no_app_message(0.3)
    finally:
        client.stop()
        print(processes.stop())

"""QuickFIX (``quickfix-py``) as the initiator against a running gateway and engine: the
acceptance tests of the FIX gateway, with the off-the-shelf engine integrators use."""
import time
from decimal import Decimal as D

import pytest
import quickfix as fix

from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Order
from trading.services import order_submit

from .support import Processes, QuickFixClient, qf_cancel, qf_new_order, qf_status, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def world():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    alice, bob = ApiKeyFactory(label="alice"), ApiKeyFactory(label="bob")
    for key in (alice, bob):
        fund(key.account, USD="100000", BTC="100")
    processes = Processes()
    clients = []

    def connect(key, **kwargs):
        client = QuickFixClient(key, processes.port, **kwargs)
        clients.append(client)
        assert client.start(), processes.output()
        return client

    yield alice, bob, connect, processes
    for client in clients:
        client.stop()
    print(processes.stop())  # shown when a test fails


def report(message):
    """The fields of an ExecutionReport the tests look at."""
    return {name: message.get(tag) for name, tag in
            [("cl", 11), ("orig", 41), ("exec_type", 150), ("status", 39), ("last_qty", 32), ("last_px", 31),
             ("cum", 14), ("leaves", 151), ("avg", 6), ("order_id", 37), ("text", 58)]}


def dec(value):
    return D(value) if value is not None else None


def test_rest_fill_on_both_sessions_and_isolation(world):
    alice_key, bob_key, connect, _ = world
    alice, bob = connect(alice_key), connect(bob_key)

    # given alice's limit sell resting in the book
    alice.send(qf_new_order("a-sell-1", fix.Side_SELL, "1.0000", "100.00"))
    new = report(alice.next_app(msg_type="8"))
    assert (new["cl"], new["exec_type"], new["status"], dec(new["leaves"]), dec(new["cum"])) == ("a-sell-1", "0", "0", D(1), 0)

    # when bob's buy crosses part of it
    bob.send(qf_new_order("b-buy-1", fix.Side_BUY, "0.4000", "101.00"))
    bob_new, bob_trade = report(bob.next_app(msg_type="8")), report(bob.next_app(msg_type="8"))
    alice_trade = report(alice.next_app(msg_type="8"))

    # then each session gets its own execution, at the maker's price
    assert bob_new["exec_type"] == "0" and bob_new["cl"] == "b-buy-1"
    assert (bob_trade["exec_type"], bob_trade["status"]) == ("F", "2")
    trade = ("last_qty", "last_px", "cum", "leaves", "avg")
    assert tuple(dec(bob_trade[name]) for name in trade) == (D("0.4"), D(100), D("0.4"), 0, D(100))
    assert (alice_trade["cl"], alice_trade["exec_type"], alice_trade["status"]) == ("a-sell-1", "F", "1")
    assert (dec(alice_trade["cum"]), dec(alice_trade["leaves"]), dec(alice_trade["avg"])) == (D("0.4"), D("0.6"), D(100))

    # when a second buy takes the rest
    bob.send(qf_new_order("b-buy-2", fix.Side_BUY, "0.6000", "100.00"))
    report(bob.next_app(msg_type="8"))
    assert report(bob.next_app(msg_type="8"))["status"] == "2"
    alice_last = report(alice.next_app(msg_type="8"))
    assert (alice_last["status"], dec(alice_last["cum"]), dec(alice_last["leaves"]), dec(alice_last["avg"])) == ("2", D(1), 0, D(100))

    # and the FIX orders are the orders REST shows
    response = SignedClient(alice_key).get("/api/v1/orders/by-client-id/a-sell-1")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "filled" and response.json()["order_id"] == alice_last["order_id"]

    # and neither session ever saw the other's executions
    assert alice.no_app_message(0.3) and bob.no_app_message(0.1)
    seen = set()
    for client in (alice, bob):
        for message in list(client.app.app_messages.queue):
            seen.add((client.key.key_id, message.get(11)))
    assert all(not cl.startswith("b-") for key, cl in seen if key == alice_key.key_id)


def test_cancel_unknown_cancel_and_status(world):
    alice_key, _, connect, _ = world
    alice = connect(alice_key)
    alice.send(qf_new_order("rest-1", fix.Side_BUY, "0.5000", "90.00"))
    order_id = report(alice.next_app(msg_type="8"))["order_id"]

    # status of a resting order
    alice.send(qf_status("rest-1", fix.Side_BUY, req_id="st-1"))
    status = alice.next_app(msg_type="8")
    assert (status.get(150), status.get(39), status.get(790), status.get(37)) == ("I", "0", "st-1", order_id)

    # cancel it: Canceled carries the cancel's ClOrdID and the order's as OrigClOrdID
    alice.send(qf_cancel("cxl-1", "rest-1", fix.Side_BUY))
    cancelled = report(alice.next_app(msg_type="8"))
    assert (cancelled["exec_type"], cancelled["status"], cancelled["cl"], cancelled["orig"], dec(cancelled["leaves"])) == (
        "4", "4", "cxl-1", "rest-1", 0)
    assert Order.objects.get(pk=order_id).status == "cancelled"

    # cancelling it again: too late; cancelling what never existed: unknown order
    alice.send(qf_cancel("cxl-2", "rest-1", fix.Side_BUY))
    late = alice.next_app(msg_type="9")
    assert (late.get(102), late.get(39), late.get(11), late.get(41)) == ("0", "4", "cxl-2", "rest-1")
    assert late.get(58).startswith("order_closed")
    alice.send(qf_cancel("cxl-3", "never-sent", fix.Side_BUY))
    unknown = alice.next_app(msg_type="9")
    assert (unknown.get(102), unknown.get(37), unknown.get(41), unknown.get(434)) == ("1", "NONE", "never-sent", "1")

    # status of an unknown order
    alice.send(qf_status("never-sent", fix.Side_BUY))
    missing = alice.next_app(msg_type="8")
    assert (missing.get(150), missing.get(39), missing.get(103)) == ("I", "8", "5")


def test_business_refusals_are_rejected_reports_and_write_nothing(world):
    alice_key, _, connect, _ = world
    alice = connect(alice_key)
    alice.send(qf_new_order("too-big", fix.Side_BUY, "10000.0000", "100.00"))
    rejected = report(alice.next_app(msg_type="8"))
    assert (rejected["exec_type"], rejected["status"], rejected["order_id"]) == ("8", "8", "NONE")
    assert rejected["text"].startswith("insufficient_balance")
    alice.send(qf_new_order("bad-tick", fix.Side_BUY, "1.0000", "100.001"))
    assert report(alice.next_app(msg_type="8"))["text"].startswith("validation_error")
    alice.send(qf_new_order("no-market", fix.Side_BUY, "1.0000", "100.00", symbol="ETH-USD"))
    assert alice.next_app(msg_type="8").get(103) == "1"
    assert not Order.objects.exists()

    # post-only that would cross is rejected by the engine; IOC with nothing to meet is cancelled
    alice.send(qf_new_order("rest-sell", fix.Side_SELL, "1.0000", "100.00"))
    alice.next_app(msg_type="8")
    alice.send(qf_new_order("po", fix.Side_BUY, "1.0000", "100.00", post_only=True))
    po = report(alice.next_app(msg_type="8"))
    assert (po["exec_type"], po["status"], po["text"]) == ("8", "8", "post_only_would_cross")
    alice.send(qf_new_order("ioc", fix.Side_BUY, "1.0000", "99.00", tif=fix.TimeInForce_IMMEDIATE_OR_CANCEL))
    ioc_new, ioc = report(alice.next_app(msg_type="8")), report(alice.next_app(msg_type="8"))
    assert (ioc_new["exec_type"], ioc_new["cl"]) == ("0", "ioc")
    assert (ioc["exec_type"], ioc["status"], dec(ioc["leaves"])) == ("4", "4", 0)


def test_orders_entered_elsewhere_reach_the_session_only_for_its_account(world):
    alice_key, bob_key, connect, _ = world
    alice = connect(alice_key)
    # when orders are entered over another transport for bob, then for alice
    order_submit(account=bob_key.account, market="BTC-USD", side="buy", type="limit", price="95.00", quantity="1.0000",
                 client_order_id="bob-rest")
    order_submit(account=alice_key.account, market="BTC-USD", side="buy", type="limit", price="96.00", quantity="1.0000",
                 client_order_id="alice-rest")
    # then alice's session reports only hers
    new = report(alice.next_app(msg_type="8"))
    assert (new["cl"], new["exec_type"]) == ("alice-rest", "0")
    assert alice.no_app_message(0.5)


def test_reconnect_keeps_sequence_numbers_and_resend_replays(world, tmp_path):
    alice_key, _, connect, processes = world
    first = connect(alice_key, store_dir=str(tmp_path))
    first.send(qf_new_order("r-1", fix.Side_BUY, "0.1000", "90.00"))
    assert first.next_app(msg_type="8").get(34) == "2"
    first.stop()
    assert wait_for(lambda: not first.app.logged_on.is_set(), 5)

    # when the initiator comes back with the same store, but having lost what it received
    # since message 2 (its store says it expects 2 next)
    seqnums = next(tmp_path.glob("store/*.seqnums"))
    sender, target = (int(part) for part in seqnums.read_text().split(":"))
    assert (sender, target) == (4, 4)  # Logon, D, Logout sent; Logon, 8, Logout received
    seqnums.write_text(f"{sender:010d} : {2:010d}")
    again = connect(alice_key, store_dir=str(tmp_path))

    # then both sides continued their numbering (no reset): Bourse's Logon answer is 4
    logon = wait_for(lambda: next((m for m in list(again.app.admin_messages.queue) if m.msg_type == "A"), None), 5)
    assert logon.get(34) == "4" and logon.get(141) is None
    # and QuickFIX's ResendRequest gets the execution report again, as a possible duplicate
    replayed = again.next_app(msg_type="8", timeout=10)
    assert (replayed.get(11), replayed.get(150), replayed.get(34), replayed.get(43)) == ("r-1", "0", "2", "Y")
    assert replayed.get(122)
    # and the Logout in between was gap-filled, so the session carries on in step
    again.send(qf_status("r-1", fix.Side_BUY))
    status = again.next_app(msg_type="8")
    assert (status.get(150), status.get(34), status.get(43)) == ("I", "5", None)
    assert again.app.logged_on.is_set()


def test_quickfix_keeps_a_short_heartbeat_session_alive(world):
    alice_key, _, connect, _ = world
    alice = connect(alice_key, heartbeat=1)
    time.sleep(3.5)  # several heartbeat intervals: heartbeats and test requests flow both ways
    assert alice.app.logged_on.is_set()
    alice.send(qf_new_order("hb-1", fix.Side_BUY, "0.1000", "90.00"))
    assert alice.next_app(msg_type="8").get(11) == "hb-1"


def test_quickfix_with_a_wrong_secret_is_logged_out(world):
    alice_key, _, _, processes = world
    alice_key.secret = "not-the-secret"
    client = QuickFixClient(alice_key, processes.port)
    try:
        assert client.start(timeout=3) is False
        logout = wait_for(lambda: _first_logout(client), 5)
        assert logout is not None and logout.get(58).startswith("invalid_credentials")
    finally:
        client.stop()


def _first_logout(client):
    for message in list(client.app.admin_messages.queue):
        if message.msg_type == "5":
            return message
    return None


def test_pending_new_reports_pass_the_dictionary(world):
    alice_key, _, connect, _ = world
    alice = connect(alice_key, pending_new="Y")
    alice.send(qf_new_order("pn-qf-1", fix.Side_BUY, "0.5000", "90.00"))
    pending, new = report(alice.next_app(msg_type="8")), report(alice.next_app(msg_type="8"))
    assert (pending["cl"], pending["exec_type"], pending["status"], dec(pending["leaves"]), dec(pending["cum"])) == (
        "pn-qf-1", "A", "A", D("0.5"), 0)
    assert (new["exec_type"], new["status"], new["order_id"]) == ("0", "0", pending["order_id"])
    # QuickFIX validated both against docs/fix44-bourse.xml: nothing was rejected back
    assert all(message.msg_type != "3" for message in list(alice.app.admin_messages.queue))

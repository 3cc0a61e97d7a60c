"""FIX: numbers are ASCII digits and ids stay in range, against the real gateway. A session
number or order id spelt with Unicode digits (``²`` is a digit to ``str.isdigit()`` but not
to ``int()``) or longer than any 64-bit id gets a Reject or a Logout, never a dead session."""
import pytest

from tests.factories import ApiKeyFactory
from trading.fix.application import order_status_request
from trading.fix.codec import Message
from trading.fix.logon import parse_utc_timestamp
from trading.models import Order

from .support import now_fix
from .test_session import gateway, logged_on, trader  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_fraction_of_unicode_digits_is_not_a_timestamp():
    assert parse_utc_timestamp("20261205-10:00:00.²²²") is None
    assert parse_utc_timestamp("20261205-10:00:00.123") is not None


def test_an_order_id_beyond_any_row_is_an_unknown_order(market):
    account = ApiKeyFactory().account
    for order_id in ("99999999999999999999999", "9223372036854775808", "١٢"):
        message = Message([(35, "H"), (37, order_id), (11, "x"), (55, "BTC-USD"), (54, "1")])
        [(msg_type, report)] = order_status_request(account, message).messages
        assert msg_type == "8" and dict(report)[58].startswith("not_found")


@pytest.mark.slow
def test_unicode_digits_and_huge_numbers_in_session_fields_are_refused(gateway, trader):  # noqa: F811
    _, client = gateway
    raw = logged_on(client, trader)
    # ResendRequest with BeginSeqNo "²": a Reject, and the session goes on
    raw.send("2", [(7, "\xb2"), (16, "0")])
    reject = raw.expect("3")
    assert reject.get(371) == "7"
    # SequenceReset-GapFill to a number no 64-bit counter holds
    raw.send("4", [(123, "Y"), (36, "9" * 25)])
    assert raw.expect("3").get(371) == "36"
    raw.send("1", [(112, "alive")])
    assert raw.expect("0").get(112) == "alive"
    # a MsgSeqNum past any 64-bit counter ends the session with a Logout saying why
    raw.send("1", [(112, "x")], seq="9" * 25)
    logout = raw.expect("5")
    assert "MsgSeqNum" in logout.get(58)
    assert not Order.objects.exists()


# --- session bounds ---------------------------------------------------------------------------


def test_every_application_message_counts_against_the_keys_budget(market, settings):
    from exchange.ratelimit import ORDERS  # noqa: F401 - the orders budget is the other one D counts against
    from trading.fix.application import application_handle

    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": "2/3600"}
    key = ApiKeyFactory()
    status = Message([(35, "H"), (11, "x"), (55, "BTC-USD"), (54, "1"), (790, "r")])
    answers = [application_handle(key.key_id, key.account, status).messages for _ in range(2)]
    assert all(dict(m[0][1])[58].startswith("not_found") for m in answers)
    [(msg_type, report)] = application_handle(key.key_id, key.account, status).messages
    assert msg_type == "8" and dict(report)[58].startswith("rate_limited") and dict(report)[790] == "r"
    cancel = Message([(35, "F"), (11, "c"), (41, "x"), (55, "BTC-USD"), (54, "1"), (60, now_fix())])
    [(msg_type, reject)] = application_handle(key.key_id, key.account, cancel).messages
    assert msg_type == "9" and dict(reject)[58].startswith("rate_limited")
    order = Message([(35, "D"), (11, "o"), (55, "BTC-USD"), (54, "1"), (60, now_fix()), (40, "2"), (38, "1"), (44, "100")])
    [(msg_type, report)] = application_handle(key.key_id, key.account, order).messages
    assert msg_type == "8" and dict(report)[39] == "8" and dict(report)[58].startswith("rate_limited")
    assert not Order.objects.exists()


def test_connections_refused_before_logon_are_logged_once_per_source_per_interval(settings, caplog):
    import logging

    from trading.fix import session

    session._refusals.clear()
    settings.BOURSE_FIX_REFUSAL_LOG_INTERVAL_S = 3600
    with caplog.at_level(logging.INFO, logger="bourse.fix"):
        for _ in range(50):
            session._log_refusal("192.0.2.1", "The first message must be Logon (35=A).")
        session._log_refusal("192.0.2.2", "garbage")
    lines = [r for r in caplog.records if r.message.startswith("FIX connection refused before logon")]
    assert [r.source_ip for r in lines] == ["192.0.2.1", "192.0.2.2"]
    settings.BOURSE_FIX_REFUSAL_LOG_INTERVAL_S = 0  # the interval is over: one line, with the count
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bourse.fix"):
        session._log_refusal("192.0.2.1", "garbage")
    [line] = [r for r in caplog.records if r.message.startswith("FIX connection refused before logon")]
    assert line.not_logged_since == 49


@pytest.mark.slow
def test_out_of_order_messages_are_capped_in_bytes_and_status_requests_count():
    from tests.factories import AssetFactory, MarketFactory

    from .support import Processes, RawClient

    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    key = ApiKeyFactory()
    processes = Processes(BOURSE_FIX_MAX_QUEUED_BYTES="25000", BOURSE_RATE_LIMIT_KEY="3/3600")
    raw = RawClient(processes.port, key)
    try:
        raw.logon()
        raw.expect("A")
        # status requests count against the key's budget like any REST request
        for i in range(4):
            raw.send("H", [(11, f"s-{i}"), (55, "BTC-USD"), (54, "1")])
        texts = [raw.expect("8").get(58) for _ in range(4)]
        assert [t.split(":")[0] for t in texts].count("rate_limited") >= 1 and texts[-1].startswith("rate_limited")
        # a gap, then messages held for it: 10 KB each, so the third passes 25,000 bytes
        ahead = raw.seq + 5
        for i in range(3):
            raw.send("0", [(112, "x" * 10000)], seq=ahead + i)
        logout = raw.expect("5", skip=("0", "2"))
        assert "Too many messages held" in logout.get(58) and "25000 bytes" in logout.get(58)
    finally:
        raw.close()
        print(processes.stop())

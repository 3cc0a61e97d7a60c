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

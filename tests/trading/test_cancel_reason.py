"""An order's cancel_reason says who cancelled it — the owner (``user``), a dropped session
with cancel-on-disconnect (``disconnect``), an operator (``operator``) — on every
transport's view of the order (REST/WebSocket order object, FIX Canceled report)."""
import pytest

from tests.audit.conftest import _client, _staff
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.fix import reports
from trading.models import Order
from trading.representations import order_to_wire
from trading.services import order_cancel, order_cancel_all, order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000")
    return account


def resting(account, runner, price="90.00"):
    order = order_submit(account=account, market="BTC-USD", side="buy", type="limit", price=price,
                         quantity="1.0000").order
    runner.step()
    return order


def test_each_canceller_leaves_its_reason_on_every_view(runner, alice, settings):
    settings.BOURSE_ENGINE_WAIT_S = 0
    by_user, by_disconnect, by_operator = (resting(alice, runner, p) for p in ("90.00", "91.00", "92.00"))
    order_cancel(account=alice, order_id=by_user.pk)
    runner.step()
    order_cancel_all(account=alice, reason="disconnect")  # what the FIX gateway calls on a drop
    runner.step()
    assert {o.pk: o.cancel_reason for o in Order.objects.all()} == {
        by_user.pk: "user", by_disconnect.pk: "disconnect", by_operator.pk: "disconnect"}

    third = resting(alice, runner, "93.00")
    operator = _client(_staff("olga-ops", "Operations"))
    operator.post("/admin/trading/order/", {"action": "cancel_orders", "_selected_action": [third.pk]})
    runner.step()
    third.refresh_from_db()
    assert third.cancel_reason == "operator"

    client = SignedClient(ApiKeyFactory(account=alice))
    assert client.get(f"/api/v1/orders/{by_disconnect.pk}").json()["cancel_reason"] == "disconnect"
    by_disconnect.refresh_from_db()
    wire = order_to_wire(by_disconnect, by_disconnect.market)  # the WebSocket `orders` event too
    assert wire["cancel_reason"] == "disconnect"
    [(msg_type, fields)] = reports.batch_reports([wire], [], account_id=alice.pk, cancel_ids={})
    assert dict(fields)[150] == "4" and dict(fields)[58] == "disconnect"  # FIX Canceled, Text


def test_an_unknown_reason_is_a_programming_error(alice):
    with pytest.raises(ValueError):
        order_cancel_all(account=alice, reason="whim")

"""Every order action writes exactly one audit event, with the right actor and request id;
refusals are recorded as refused; settlement records each fill."""
import pytest

from audit.models import AuditEvent
from exchange import errors
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Fill, Order
from trading.services import order_cancel, order_submit

pytestmark = pytest.mark.django_db

LIMIT = {"market": "BTC-USD", "side": "sell", "type": "limit", "price": "100.00", "quantity": "0.5000"}


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def trader(market):
    account = AccountFactory()
    fund(account, USD="1000", BTC="10")
    return account


def test_submit_over_rest_is_audited_as_the_key_with_the_request_id(runner, trader, settings):
    settings.BOURSE_ENGINE_WAIT_S = 0
    client = SignedClient(ApiKeyFactory(account=trader))
    response = client.post("/api/v1/orders", json=LIMIT, extra={"HTTP_X_REQUEST_ID": "req-audit-1"})
    assert response.status_code == 202, response.content
    (event,) = events("order.submitted")
    assert (event.actor_type, event.actor_id) == ("apikey", client.key.key_id)
    assert event.request_id == "req-audit-1" == response["X-Request-ID"]
    assert (event.target_id, event.account_id, event.outcome) == (response.json()["order_id"], trader.pk, "success")
    assert event.after["price"] == "100.00" and event.after["side"] == "sell"


def test_refused_submission_is_audited_as_refused_and_writes_no_order(runner, trader):
    with pytest.raises(errors.InsufficientBalance):
        order_submit(account=trader, **{**LIMIT, "quantity": "50.0000"})
    (event,) = events("order.rejected")
    assert (event.outcome, event.account_id) == ("refused", trader.pk)
    assert event.reason.startswith("insufficient_balance")
    assert not Order.objects.exists() and not events("order.submitted")


def test_engine_rejection_is_audited_as_the_engine(runner, trader):
    order_submit(account=trader, **LIMIT)
    runner.step()
    post_only = order_submit(account=trader, **{**LIMIT, "side": "buy", "post_only": True, "stp": "cancel_oldest"}).order
    runner.step()
    (event,) = events("order.rejected")
    assert (event.actor_type, event.actor_label, event.target_id) == ("system", "engine", str(post_only.pk))
    assert event.after == {"reason": "post_only_would_cross"}


def test_cancel_is_audited_once_and_a_refused_cancel_as_refused(runner, trader):
    order = order_submit(account=trader, **LIMIT).order
    runner.step()
    order_cancel(account=trader, order_id=order.pk)
    runner.step()
    (event,) = events("order.cancelled")
    assert (event.target_id, event.outcome) == (str(order.pk), "success")
    with pytest.raises(errors.OrderClosed):
        order_cancel(account=trader, order_id=order.pk)
    assert [e.outcome for e in events("order.cancelled")] == ["success", "refused"]
    # trying another account's order is recorded against the one who tried
    intruder = AccountFactory()
    with pytest.raises(errors.NotFound):
        order_cancel(account=intruder, order_id=order.pk)
    assert events("order.cancelled")[-1].account_id == intruder.pk


def test_settlement_records_each_fill_once(runner, trader):
    buyer = AccountFactory()
    fund(buyer, USD="1000")
    order_submit(account=trader, **LIMIT)
    runner.step()
    order_submit(account=buyer, **{**LIMIT, "side": "buy", "quantity": "0.2000"})
    runner.step()  # settles inline (Celery eager in tests)
    settled = events("fill.settled")
    assert sorted(int(e.target_id) for e in settled) == sorted(Fill.objects.values_list("pk", flat=True))
    assert {(e.actor_type, e.actor_label) for e in settled} == {("system", "settlement")}
    assert {e.account_id for e in settled} == {trader.pk, buyer.pk}

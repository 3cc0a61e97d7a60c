"""Every audited action of the services that exist writes exactly one event, with the
right actor and request id; refused operator actions write their refusal."""
from decimal import Decimal

import pytest

from accounts import services as accounts_services
from accounts.models import Journal
from audit.models import AuditEvent
from exchange import errors
from exchange.context import Actor, actor_var, request_id_var
from tests.audit.helpers import events
from tests.factories import UserFactory
from trading.models import Market
from trading.services import market_create, market_set_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_request():
    token_id, token_actor = request_id_var.set("req-hooks"), actor_var.set(Actor.apikey("key_9"))
    yield
    actor_var.reset(token_actor)
    request_id_var.reset(token_id)


def test_account_create_is_audited_once(in_request):
    account = accounts_services.account_create(name="carol", username="carol")
    (event,) = events("account.created")
    assert (event.account_id, event.actor_id, event.request_id) == (account.pk, "key_9", "req-hooks")
    assert event.after == {"name": "carol", "owner": "carol"}


def test_refused_account_create_writes_nothing():
    UserFactory(username="taken")
    with pytest.raises(errors.ValidationError):
        accounts_services.account_create(name="x", username="taken")
    assert not AuditEvent.objects.exists()


def test_operator_deposit_and_withdrawal_are_audited_with_reason(trader, usd):
    operator = UserFactory(username="op-1")
    deposit = accounts_services.balance_deposit(
        account=trader, asset="USD", amount="100.5", reason="wire #1", reference="w1", actor=operator
    )
    withdrawal = accounts_services.balance_withdraw(account=trader.pk, asset="USD", amount="0.5", reason="payout #2", actor=operator)

    (dep,) = events("balance.deposited")
    (wd,) = events("balance.withdrawn")
    assert (dep.actor_type, dep.actor_label, dep.reason, dep.account_id) == ("user", "op-1", "wire #1", trader.pk)
    assert dep.after == {"asset": "USD", "amount": "100.5", "reference": "w1", "journal_id": deposit.pk}
    assert (wd.reason, wd.after["amount"], wd.after["journal_id"]) == ("payout #2", "0.5", withdrawal.pk)
    assert AuditEvent.objects.count() == 2


def test_refused_operator_debit_records_the_refusal_and_moves_nothing(trader, usd):
    operator = UserFactory(username="op-2")
    with pytest.raises(errors.InsufficientBalance):
        accounts_services.balance_withdraw(account=trader, asset="USD", amount="5", reason="oops", actor=operator)
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.outcome, event.actor_label, event.account_id) == ("balance.withdrawn", "refused", "op-2", trader.pk)
    assert event.reason.startswith("insufficient_balance: ")
    assert event.after == {"asset": "USD", "amount": "5", "reference": ""}
    assert not Journal.objects.exists()


def test_refused_system_movement_writes_nothing(trader, usd):
    with pytest.raises(errors.InvalidAmount):
        accounts_services.balance_deposit(account=trader, asset="USD", amount="-1")
    assert not AuditEvent.objects.exists()


def test_internal_movements_are_left_to_the_ledger(trader, other_trader, usd):
    accounts_services.balance_deposit(account=trader, asset="USD", amount="10")
    accounts_services.balance_hold(account=trader, asset="USD", amount="4")
    accounts_services.balance_release(account=trader, asset="USD", amount="1")
    accounts_services.balance_transfer(from_account=trader, to_account=other_trader, asset="USD", amount="1", kind="fee")
    assert [e.action for e in events()] == ["balance.deposited"]


def test_manual_adjustment_is_audited(trader, other_trader, usd):
    accounts_services.balance_deposit(account=trader, asset="USD", amount="10")
    operator = UserFactory(username="op-3")
    accounts_services.balance_transfer(
        from_account=trader, to_account=other_trader, asset="USD", amount="2", reason="misdirected wire", actor=operator
    )
    (event,) = events("balance.adjusted")
    assert (event.account_id, event.actor_label, event.reason) == (trader.pk, "op-3", "misdirected wire")
    assert event.after["to_account"] == other_trader.pk and event.after["amount"] == Decimal("2").__format__("f")


def test_market_create_halt_resume_are_audited(in_request):
    market, created = market_create(symbol="ETH-EUR", tick_size="0.01", lot_size="0.001")
    assert created
    market_create(symbol="ETH-EUR", tick_size="0.01", lot_size="0.001")  # exists: no change, no event
    operator = UserFactory(username="op-4")
    market_set_status(symbol="ETH-EUR", status=Market.Status.HALTED, actor=operator, reason="incident 12")
    market_set_status(symbol="ETH-EUR", status=Market.Status.HALTED, actor=operator)  # no-op
    market_set_status(symbol="ETH-EUR", status=Market.Status.OPEN)

    assert [e.action for e in events()] == ["market.created", "market.halted", "market.resumed"]
    created_event, halted, resumed = events()
    assert created_event.after["tick_size"] == "0.01" and created_event.target_id == str(market.pk)
    assert (halted.actor_label, halted.before, halted.after, halted.reason) == (
        "op-4", {"status": "open"}, {"status": "halted"}, "incident 12")
    assert (resumed.actor_type, resumed.actor_id, resumed.request_id) == ("apikey", "key_9", "req-hooks")


def test_refused_halt_of_unknown_market_writes_nothing():
    with pytest.raises(errors.MarketNotFound):
        market_set_status(symbol="NOPE-USD", status=Market.Status.HALTED)
    assert not AuditEvent.objects.exists()

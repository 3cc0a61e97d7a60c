"""``audit_record`` and ``audit_refusals``: what an event carries and where it comes from."""
from decimal import Decimal

import pytest
from django.db import transaction

from audit.models import AuditEvent
from audit.services import audit_record, audit_refusals, jsonable
from exchange import errors
from exchange.context import Actor, actor_var, request_id_var, source_ip_var
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_context():
    tokens = [
        (request_id_var, request_id_var.set("req-123")),
        (source_ip_var, source_ip_var.set("203.0.113.9")),
        (actor_var, actor_var.set(Actor.apikey("key_abc"))),
    ]
    yield
    for var, token in reversed(tokens):
        var.reset(token)


def test_context_supplies_actor_request_id_and_source_ip(request_context, trader):
    event = audit_record("account.created", target=trader)
    event.refresh_from_db()
    assert (event.actor_type, event.actor_id, event.actor_label) == ("apikey", "key_abc", "key_abc")
    assert (event.request_id, event.source_ip) == ("req-123", "203.0.113.9")
    assert (event.target_type, event.target_id, event.account_id) == ("accounts.account", str(trader.pk), trader.pk)


def test_without_context_the_actor_is_the_system(trader):
    event = audit_record("account.created", target=trader)
    assert (event.actor_type, event.actor_label, event.request_id, event.source_ip) == ("system", "system", "", None)


def test_explicit_arguments_win_over_context(request_context, trader):
    user = UserFactory(username="operator-1")
    event = audit_record("account.created", target=trader, actor=user, request_id="mine", source_ip="198.51.100.1")
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", str(user.pk), "operator-1")
    assert (event.request_id, event.source_ip) == ("mine", "198.51.100.1")


def test_account_is_taken_from_targets_that_carry_one(trader):
    balance_like = type("Thing", (), {})  # not a model: must use a tuple target
    with pytest.raises(TypeError):
        audit_record("account.created", target=balance_like())
    event = audit_record("order.submitted", target=("trading.order", 42), account=trader)
    assert (event.target_type, event.target_id, event.account_id) == ("trading.order", "42", trader.pk)


def test_unknown_action_and_outcome_are_programming_errors():
    with pytest.raises(ValueError, match="unknown audit action"):
        audit_record("account.exploded", target=("x", 1))
    with pytest.raises(ValueError, match="outcome"):
        audit_record("account.created", target=("x", 1), outcome="maybe")
    assert not AuditEvent.objects.exists()


def test_values_are_stored_json_safe_and_read_back_identically():
    event = audit_record(
        "balance.deposited", target=("accounts.account", 1), after={"amount": Decimal("1.50"), "n": 3, "tags": {"b", "a"}}
    )
    event.refresh_from_db()
    assert event.after == {"amount": "1.50", "n": 3, "tags": ["a", "b"]}
    assert jsonable(Decimal("1E+2")) == "100"


def test_event_belongs_to_the_callers_transaction(trader):
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record("account.created", target=trader)
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()


def test_refusals_are_recorded_after_the_rollback_and_re_raised(trader):
    with (
        pytest.raises(errors.InsufficientBalance),
        audit_refusals("balance.withdrawn", target=trader, after={"amount": "5"}),
        transaction.atomic(),
    ):
        audit_record("balance.withdrawn", target=trader)  # rolled back with the change
        raise errors.InsufficientBalance("Needs 5 USD; 0 available.")
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.outcome, event.account_id) == ("balance.withdrawn", "refused", trader.pk)
    assert event.reason == "insufficient_balance: Needs 5 USD; 0 available."


def test_refusal_recording_can_be_disabled(trader):
    with pytest.raises(errors.NotFound), audit_refusals("balance.withdrawn", target=trader, enabled=False):
        raise errors.NotFound()
    assert not AuditEvent.objects.exists()


def test_events_commit_and_seal_after_commit(transactional_db, trader):
    with transaction.atomic():
        audit_record("account.created", target=trader)
    event = AuditEvent.objects.get()
    assert event.seq == 1 and event.hash  # tests seal inline in the commit callback

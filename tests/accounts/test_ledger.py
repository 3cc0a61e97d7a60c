"""Ledger services: each happy path, each refusal (and that a refusal writes nothing)."""
from decimal import Decimal

import pytest
from django.db import transaction

from accounts import ledger, services
from accounts.models import Account, Balance, Journal, LedgerEntry
from exchange import errors
from exchange.dbmath import decimal_sums

pytestmark = pytest.mark.django_db


def balance(account, asset):
    row = Balance.objects.filter(account=account, asset_id=asset).first()
    return (row.available, row.locked) if row else (Decimal(0), Decimal(0))


def snapshot():
    """Everything the ledger writes, to compare before/after a refused operation."""
    return (
        Journal.objects.count(),
        LedgerEntry.objects.count(),
        sorted(Balance.objects.values_list("account_id", "asset_id", "available", "locked")),
    )


def assert_all_journals_balance():
    per_journal_asset = decimal_sums(LedgerEntry.objects.all(), ("journal_id", "asset_id"), "amount")
    assert per_journal_asset and all(total == 0 for total in per_journal_asset.values()), per_journal_asset


def test_deposit_credits_trader_and_debits_external(trader, usd):
    journal = services.balance_deposit(account=trader, asset="USD", amount="100.50", reference="wire-1")

    assert balance(trader, "USD") == (Decimal("100.50"), 0)
    external = Account.objects.get(system_role="external")
    entries = {(e.account_id, e.bucket): e.amount for e in journal.entries.all()}
    assert entries == {(external.pk, "available"): Decimal("-100.50"), (trader.pk, "available"): Decimal("100.50")}
    assert set(journal.entries.values_list("kind", flat=True)) == {"deposit"}
    assert not Balance.objects.filter(account=external).exists()  # the outside world has no balance rows
    assert_all_journals_balance()


def test_withdraw_debits_available(trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="100")
    services.balance_withdraw(account=trader, asset="USD", amount="40.25")
    assert balance(trader, "USD") == (Decimal("59.75"), 0)
    assert_all_journals_balance()


def test_hold_then_release_moves_between_buckets(trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="100")
    services.balance_hold(account=trader, asset="USD", amount="30", reference="order-1")
    assert balance(trader, "USD") == (Decimal("70"), Decimal("30"))
    services.balance_release(account=trader, asset="USD", amount="10", reference="order-1")
    assert balance(trader, "USD") == (Decimal("80"), Decimal("20"))
    assert_all_journals_balance()


def test_transfer_between_traders_and_from_locked(trader, other_trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="100")
    services.balance_transfer(from_account=trader, to_account=other_trader, asset="USD", amount="25", kind="trade")
    services.balance_hold(account=trader, asset="USD", amount="50")
    services.balance_transfer(
        from_account=trader, to_account=other_trader, asset="USD", amount="20", from_bucket="locked", kind="trade"
    )
    assert balance(trader, "USD") == (Decimal("25"), Decimal("30"))
    assert balance(other_trader, "USD") == (Decimal("45"), 0)
    assert_all_journals_balance()


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda a: services.balance_withdraw(account=a, asset="USD", amount="100.01"), errors.InsufficientBalance),
        (lambda a: services.balance_hold(account=a, asset="USD", amount="100.01"), errors.InsufficientBalance),
        (lambda a: services.balance_release(account=a, asset="USD", amount="0.01"), errors.InsufficientBalance),
        (lambda a: services.balance_deposit(account=a, asset="XYZ", amount="1"), errors.AssetNotFound),
        (lambda a: services.balance_hold(account=a, asset="XYZ", amount="1"), errors.AssetNotFound),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount="0"), errors.InvalidAmount),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount="-5"), errors.InvalidAmount),
        (lambda a: services.balance_withdraw(account=a, asset="USD", amount="-1"), errors.InvalidAmount),
        (lambda a: services.balance_hold(account=a, asset="USD", amount="0"), errors.InvalidAmount),
        (lambda a: services.balance_release(account=a, asset="USD", amount="-1"), errors.InvalidAmount),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount="1.0000001"), errors.InvalidAmount),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount=1.5), errors.ValidationError),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount="abc"), errors.ValidationError),
        (lambda a: services.balance_deposit(account=a, asset="USD", amount="NaN"), errors.ValidationError),
        (lambda a: services.balance_deposit(account=a + 10_000, asset="USD", amount="1"), errors.NotFound),
    ],
)
def test_refusals_raise_domain_error_and_write_nothing(trader, usd, call, error):
    services.balance_deposit(account=trader, asset="USD", amount="100")
    before = snapshot()

    with pytest.raises(error):
        call(trader.pk)

    assert snapshot() == before


def test_transfer_refusals_write_nothing(trader, other_trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="10")
    before = snapshot()
    with pytest.raises(errors.InsufficientBalance) as refused:
        services.balance_transfer(from_account=trader, to_account=other_trader, asset="USD", amount="10.01")
    assert refused.value.extra == {"asset": "USD", "needed": "10.010000", "available": "10.000000"}
    with pytest.raises(errors.ValidationError):
        services.balance_transfer(from_account=trader, to_account=trader, asset="USD", amount="1")
    with pytest.raises(errors.ValidationError):
        services.balance_transfer(from_account=trader, to_account=other_trader, asset="USD", amount="1", kind="hold")
    assert snapshot() == before


def test_insufficient_balance_detail_names_amounts(trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="1200")
    with pytest.raises(errors.InsufficientBalance) as refused:
        services.balance_hold(account=trader, asset="USD", amount="1500")
    assert refused.value.detail == "Needs 1500.000000 USD; 1200.000000 available."


def test_external_account_cannot_be_funded(usd):
    external = Account.objects.get(system_role="external")
    with pytest.raises(errors.ValidationError):
        services.balance_deposit(account=external, asset="USD", amount="1")


def test_post_refuses_unbalanced_journal(trader, usd):
    with transaction.atomic(), pytest.raises(ValueError, match="does not balance"):
        ledger.post("adjustment", [ledger.Leg(trader.pk, "USD", "available", Decimal("1"))])
    assert snapshot()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_post_requires_a_transaction(trader, usd):
    with pytest.raises(RuntimeError, match="inside the calling service's transaction"):
        ledger.post("hold", ledger.hold_legs(trader.pk, "USD", Decimal(1)))


def test_idempotency_key_applies_a_journal_once(trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="10")
    legs = ledger.hold_legs(trader.pk, "USD", Decimal("4"))
    with transaction.atomic():
        ledger.post("hold", legs, idempotency_key="fill:1")
    with transaction.atomic(), pytest.raises(ledger.AlreadyPosted):
        ledger.post("hold", legs, idempotency_key="fill:1")
    assert balance(trader, "USD") == (Decimal("6"), Decimal("4"))


def test_database_refuses_negative_balance_even_bypassing_services(trader, usd):
    from django.db import IntegrityError

    services.balance_deposit(account=trader, asset="USD", amount="1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Balance.objects.filter(account=trader).update(available=Decimal("-1"))


def test_post_many_writes_what_post_writes_in_a_constant_number_of_statements(trader, other_trader, usd):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.balance_deposit(account=trader, asset="USD", amount="1000")
    services.balance_deposit(account=other_trader, asset="USD", amount="1000")

    def postings(n):
        return [ledger.Posting("hold", ledger.hold_legs(trader.pk, "USD", Decimal("1.5")), reference=f"r{i}")
                for i in range(n)] + [
            ledger.Posting("trade", ledger.transfer_legs(other_trader.pk, trader.pk, "USD", Decimal("2")), reference="t")]

    counts = []
    for n in (1, 40):
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            journals = ledger.post_many(postings(n))
        counts.append(len(queries))
        assert len(journals) == n + 1 and all(journals) and journals == sorted(journals)  # their ids, in order
        assert [j.reference for j in Journal.objects.filter(pk__in=journals).order_by("pk")] == [
            p.reference for p in postings(n)]
    assert counts[0] == counts[1], counts  # statements do not grow with the number of journals
    assert balance(trader, "USD") == (Decimal("1000") + 4 - Decimal("1.5") * 41, Decimal("1.5") * 41)
    assert balance(other_trader, "USD") == (Decimal("996"), 0)
    assert LedgerEntry.objects.filter(reference="r39").count() == 2
    assert_all_journals_balance()


def test_post_many_refuses_all_when_a_bucket_would_go_negative(trader, usd):
    services.balance_deposit(account=trader, asset="USD", amount="10")
    before = snapshot()
    with pytest.raises(errors.InsufficientBalance), transaction.atomic():
        ledger.post_many([ledger.Posting("hold", ledger.hold_legs(trader.pk, "USD", Decimal("6"))) for _ in range(2)])
    assert snapshot() == before


def test_post_many_writes_any_reference_and_exact_amounts_and_refuses_a_posted_key(trader, usd):
    from django.db import IntegrityError

    services.balance_deposit(account=trader, asset="USD", amount="1000")
    odd = 'a"b\\c,{d} NULL e'  # array-literal syntax inside the text must come back as written
    from django.db import connection

    # the smallest amount the configuration stores exactly next to 1000 (SQLite: 15 digits)
    tiny = Decimal("0.000000000000000001") if connection.vendor == "postgresql" else Decimal("0.000000000001")
    with transaction.atomic():
        (journal_id,) = ledger.post_many([ledger.Posting("hold", ledger.hold_legs(trader.pk, "USD", tiny),
                                                         reference=odd, idempotency_key="k:1")])
    journal = Journal.objects.get(pk=journal_id)
    assert (journal.reference, journal.idempotency_key) == (odd, "k:1")
    entries = list(LedgerEntry.objects.filter(journal=journal).order_by("id"))
    assert [(e.bucket, e.amount, e.reference) for e in entries] == [("available", -tiny, odd), ("locked", tiny, odd)]
    assert balance(trader, "USD") == (Decimal("1000") - tiny, tiny)
    with pytest.raises(IntegrityError), transaction.atomic():  # posted once: never twice
        ledger.post_many([ledger.Posting("hold", ledger.hold_legs(trader.pk, "USD", tiny), idempotency_key="k:1")])
    assert balance(trader, "USD") == (Decimal("1000") - tiny, tiny)
    assert_all_journals_balance()

"""Admin: balances and entries are read-only; operators fund/debit through the services."""
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Balance, Journal

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client, user


def fund(client, account, **fields):
    return client.post(
        "/admin/accounts/account/",
        {"action": "fund_or_debit", "_selected_action": [account.pk], "apply": "1", **fields},
    )


def test_fund_action_asks_for_a_form_first(operator_client, trader, usd):
    client, _ = operator_client
    response = client.post("/admin/accounts/account/", {"action": "fund_or_debit", "_selected_action": [trader.pk]})
    assert response.status_code == 200
    assert b"reason" in response.content
    assert not Journal.objects.exists()


def test_fund_and_debit_write_journals_with_reason(operator_client, trader, usd):
    client, user = operator_client
    fund(client, trader, direction="deposit", asset="USD", amount="250.00", reason="wire received #77")
    fund(client, trader, direction="withdraw", asset="USD", amount="50.00", reason="withdrawal request #78")

    assert Balance.objects.get(account=trader, asset=usd).available == Decimal("200.00")
    journals = list(Journal.objects.order_by("id").values_list("kind", "reason", "created_by"))
    assert journals == [("deposit", "wire received #77", user.pk), ("withdrawal", "withdrawal request #78", user.pk)]


def test_debit_beyond_balance_is_refused_and_writes_nothing(operator_client, trader, usd):
    client, _ = operator_client
    response = fund(client, trader, direction="withdraw", asset="USD", amount="1.00", reason="no funds here")
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("insufficient_balance" in m for m in messages)
    assert not Journal.objects.exists()


def test_fund_without_reason_is_refused(operator_client, trader, usd):
    client, _ = operator_client
    response = fund(client, trader, direction="deposit", asset="USD", amount="1.00", reason="")
    assert response.status_code == 200  # the form comes back with the error
    assert not Journal.objects.exists()


@pytest.mark.parametrize("url", ["/admin/accounts/balance/", "/admin/accounts/ledgerentry/", "/admin/accounts/journal/"])
def test_ledger_pages_are_read_only(operator_client, trader, usd, url):
    client, _ = operator_client
    assert client.get(url).status_code == 200
    assert client.get(url + "add/").status_code == 403

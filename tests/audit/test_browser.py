"""The console in a real browser (headless Chromium through Playwright): a Support user
logs in, finds an order by its client order id, opens the account's console page and
sees its audit history there; and finds an event in the audit list by request id.

Uses Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it); never a
downloaded browser. Skipped, saying why, where /usr/bin/chromium is absent.
"""
import os
from pathlib import Path

import pytest

from accounts import services as accounts_services
from audit.models import AuditEvent
from exchange.context import request_id_var
from tests.audit.conftest import PASSWORD, _staff
from tests.factories import AccountFactory, AssetFactory, MarketFactory
from trading.services import order_submit

CHROMIUM = Path(os.environ.get("BOURSE_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium chromium-driver"),
]


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "sally-support")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Bourse console" in page.inner_text("#site-name")


def off_the_event_loop(query):
    """Run an ORM query in a plain thread: Playwright's sync API keeps an event loop running
    in the test's thread, where Django refuses synchronous database calls."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def run():
        try:
            return query()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-test.txt)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def support_case(transactional_db):
    """An account funded by an operator in a request whose id the customer quoted, with an
    order the customer knows by its client order id."""
    _staff("sally-support", "Support")
    market = MarketFactory(base=AssetFactory(code="BTC", scale=8), quote=AssetFactory(code="USD", scale=2))
    account = AccountFactory(name="acme-trading")
    operator = _staff("oscar-ops", "Operations")
    token = request_id_var.set("req-ticket-4711")
    try:
        accounts_services.balance_deposit(account=account, asset="USD", amount="1500.00", reason="wire 4711", actor=operator)
    finally:
        request_id_var.reset(token)
    order_submit(account=account, market=market.symbol, side="buy", type="limit", quantity="1.5", price="900.00",
                 client_order_id="acme-7f31")
    return account


def test_support_finds_an_order_by_client_order_id_and_reads_the_account_history(live_server, support_case, browser):
    account = support_case
    page = browser.new_page()
    page.set_default_timeout(15_000)

    # Given a Support user logged in to the console
    log_in(page, live_server.url)

    # When she looks up the order the customer quotes by its client order id
    page.goto(f"{live_server.url}/admin/trading/order/")
    page.fill("#searchbar", "acme-7f31")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert "acme-7f31" in page.inner_text("#result_list")
    page.click("#result_list tbody tr:first-child th a")

    # And goes from the order to its account, and on to the account's console page
    page.click(f"a[href$='/accounts/account/{account.pk}/change/']")
    page.click(f".object-tools a[href$='/accounts/account/{account.pk}/console/']")
    page.wait_for_selector("#section-audit")

    # Then the order is among the open orders, next to the balances and the audit history
    assert "acme-7f31" in page.inner_text("#section-open_orders")
    assert "1500.00" in page.inner_text("#section-balances")
    history = page.inner_text("#section-audit")
    assert "balance.deposited" in history and "wire 4711" in history and "oscar-ops" in history
    page.close()


def test_support_finds_an_event_by_request_id_and_opens_its_account(live_server, support_case, browser):
    account = support_case
    page = browser.new_page()
    page.set_default_timeout(15_000)

    # Given a Support user logged in to the console
    log_in(page, live_server.url)

    # When she searches the audit list for the request id the customer quoted
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    page.fill("#searchbar", "req-ticket-4711")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    results = page.inner_text("#result_list")
    assert "balance.deposited" in results and "oscar-ops" in results
    assert "admin.login" not in results  # only what the search matched

    # And follows the event's account to the account's console page
    page.click(f"#result_list a[href$='/accounts/account/{account.pk}/console/']")
    page.wait_for_selector("#section-audit")

    # Then she sees its balance and its audit history, the deposit with its reason among it
    assert "1500.00" in page.inner_text("#section-balances")
    history = page.inner_text("#section-audit")
    assert "balance.deposited" in history and "wire 4711" in history and "req-ticket-4711" in history
    # ...and no way to change anything from there
    assert page.locator("input[name=_save]").count() == 0
    page.close()


def test_audit_of_the_browser_session(live_server, support_case, browser):
    """The log-in made in the browser is itself in the trail, with the browser's address."""
    page = browser.new_page()
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "sally-support")
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")
    page.wait_for_selector(".errornote")
    page.close()

    failed = off_the_event_loop(lambda: AuditEvent.objects.get(action="admin.login_failed"))
    assert (failed.target_id, failed.source_ip, failed.reason) == ("sally-support", "127.0.0.1", "bad_credentials")

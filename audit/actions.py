"""The catalogue of audited actions: ``entity.past_tense`` names and what each means.

``audit_record`` refuses a name that is not here, so a typo cannot quietly create an
action nobody filters for; the admin's action filter and docs/admin.md list the same
names. Add an entry when a service starts auditing something new.
"""

ACTIONS: dict[str, str] = {
    # Accounts and money (accounts.services)
    "account.created": "A trading account was created.",
    "balance.deposited": "Funds were credited to an account from outside (operator funding).",
    "balance.withdrawn": "Funds were debited from an account to outside (operator debit).",
    "balance.adjusted": "Funds were moved between accounts as a manual adjustment.",
    # API keys (apikeys.services)
    "apikey.created": "An API key was issued.",
    "apikey.scopes_changed": "An API key's scopes, IP allowlist or expiry changed.",
    "apikey.revoked": "An API key was revoked.",
    # Authentication
    "auth.failed": "A signed request, WebSocket auth or FIX logon failed authentication.",
    "auth.failures_suppressed": "Summary of further authentication failures from one source in one window.",
    # Orders and fills (trading.services)
    "order.submitted": "An order was accepted for matching.",
    "order.rejected": "An order was refused (validation, balance, halted market, or by the engine).",
    "order.cancelled": "An order was cancelled by its owner or an operator.",
    "order.amended": "An order's price, quantity or client order id was changed in place (requested, then applied by the engine).",
    "order.triggered": "A stop order's stop price was reached by a trade: it entered the book.",
    "order.expired": "A good-till-date order reached its expire_time and was cancelled by the engine.",
    "order.cancel_refusals_suppressed": "Summary of further refused cancels of one account with one error code in one window.",
    "fill.settled": "A fill was applied to the ledger.",
    "deadman.armed": "An API key's dead-man switch (cancel-after) was armed from the disarmed state.",
    "deadman.disarmed": "An API key's dead-man switch was disarmed (timeout 0).",
    "deadman.fired": "An API key's dead-man switch was not re-armed in time: its account's live orders were cancelled.",
    "engine.command_quarantined": (
        "The engine could not process a command: it was set aside (a new order rejected with engine_error) "
        "and the market went on."
    ),
    # Markets (trading.services.markets)
    "market.created": "A market was created.",
    "market.updated": "A market's filters (tick or lot size, minimums, fee rates) were changed.",
    "market.halted": "A market was halted: it accepts no new orders.",
    "market.resumed": "A halted market was opened again.",
    # The admin console
    "admin.login": "A console user logged in.",
    "admin.login_failed": "A console log-in failed (wrong credentials or too many attempts).",
    "admin.login_failures_suppressed": "Summary of further console log-in failures from one source in one window.",
    "admin.added": "An object was added through the admin.",
    "admin.changed": "An object was changed through the admin.",
    "admin.deleted": "An object was deleted through the admin.",
    "audit.exported": "A filtered audit list was exported as CSV.",
}


def describe(action: str) -> str:
    return ACTIONS.get(action, "")

"""Helpers shared by the order-lifecycle and API tests: funding, balances, and the
environment a child process (engine, server) needs to use the test database."""
import os
import sys

from django.conf import settings
from django.db import connection

from accounts import services as account_services
from accounts.models import Balance

PYTHON = sys.executable


def fund(account, **amounts):
    for asset, amount in amounts.items():
        account_services.balance_deposit(account=account, asset=asset, amount=amount)


def balances(account) -> dict:
    return {b.asset_id: (b.available, b.locked) for b in Balance.objects.filter(account=account)}


def subprocess_env() -> dict:
    """Environment for a child process (engine, server) that must use the test database."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["BOURSE_DATA_DIR"] = str(settings.DATA_DIR)
    env["BOURSE_ALLOW_GENERATED_SECRETS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env

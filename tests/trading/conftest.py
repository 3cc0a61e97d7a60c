"""Fixtures for the order lifecycle: a market's engine runner driven in-process."""
import os
import sys
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from accounts import services as account_services
from accounts.models import Balance
from trading.models import EngineState
from trading.runner import MarketRunner

D = Decimal


@pytest.fixture
def runner(market):
    """The market's engine, run by hand: ``runner.step()`` processes pending commands."""
    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "test-owner"})
    engine = MarketRunner(market, "test-owner")
    engine.rebuild()
    return engine


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


PYTHON = sys.executable

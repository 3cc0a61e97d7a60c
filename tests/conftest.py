"""Fixtures shared by the whole suite."""
import pytest
from django.core.cache import cache
from django.db import connection

from exchange.celery import app as celery_app
from tests.factories import AccountFactory, AssetFactory, MarketFactory

# Tasks run inline in tests (settlement right after an engine batch commits); no broker.
celery_app.conf.task_always_eager = True
celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit and replay caches must not leak between tests."""
    cache.clear()
    yield


@pytest.fixture
def usd(db):
    return AssetFactory(code="USD", scale=6)


@pytest.fixture
def btc(db):
    return AssetFactory(code="BTC", scale=8)


@pytest.fixture
def market(db, usd, btc):
    return MarketFactory(base=btc, quote=usd)


@pytest.fixture
def trader(db):
    return AccountFactory()


@pytest.fixture
def other_trader(db):
    return AccountFactory()


def on_postgres() -> bool:
    return connection.vendor == "postgresql"



"""Fixtures of the WebSocket tests."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def _close_relay_connection(django_db_setup):
    """The relay reads on a thread of its own with a persistent connection; close it before
    the test database is dropped (PostgreSQL refuses to drop a database in use)."""
    yield
    from trading.ws.relay import _close_connection, _db_executor

    _db_executor.submit(_close_connection).result(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_market_cache():
    """Each test creates its own markets: none may see a previous test's cached look-up."""
    from trading.ws.selectors import market_cache_clear

    market_cache_clear()
    yield
    market_cache_clear()

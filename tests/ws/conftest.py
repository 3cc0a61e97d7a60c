"""Fixtures of the WebSocket tests."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def _close_relay_connection(django_db_setup):
    """The relay reads on a thread of its own with a persistent connection; close it before
    the test database is dropped (PostgreSQL refuses to drop a database in use)."""
    yield
    from trading.ws.relay import _close_connection, _db_executor

    _db_executor.submit(_close_connection).result(timeout=10)

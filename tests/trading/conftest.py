import pytest

from trading.runner import EngineProcess


@pytest.fixture
def engine_process():
    """An ``EngineProcess`` for a test that drives its loop by hand. Its ownership connection
    (PostgreSQL: its own session, for the advisory locks) is closed afterwards: left open, it
    outlived the test and the test database could not be dropped at the end of the run."""
    process = EngineProcess()
    yield process
    process.ownership.close()

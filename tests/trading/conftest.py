import pytest

from trading.runner import EngineProcess


@pytest.fixture
def engine_process():
    """An ``EngineProcess`` for a test that drives its loop by hand. Its own connections
    (PostgreSQL: the ownership session holding the advisory locks, the wake listener's) are
    closed afterwards: left open, they outlived the test and the test database could not be
    dropped at the end of the run."""
    process = EngineProcess()
    yield process
    process._close_listener()
    process.ownership.close()

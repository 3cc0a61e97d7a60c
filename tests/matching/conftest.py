"""Engine tests need neither Django nor any service.

The suite-wide ``tests/conftest.py`` has an autouse fixture that clears the
Django cache; the engine never touches it, so it is replaced here by a no-op
to keep these tests runnable without the cache backend being reachable.
"""

import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    yield

"""The tests here run a deployment on private servers (instances.py), whatever the suite's
own database is; they run once, in the PostgreSQL + Redis pass of CI (.ci/run), and are
skipped in the embedded one, which would only repeat them."""
import pytest
from django.conf import settings


def pytest_collection_modifyitems(config, items):
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="runs in the PostgreSQL + Redis configuration only (its own servers; once is enough)")
    for item in items:
        if "tests/chaos/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)

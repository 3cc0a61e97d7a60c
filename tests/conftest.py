"""Fixtures shared by the whole suite."""
import pytest
from django.core.cache import cache
from django.db import connection

from apikeys import keycache
from exchange.celery import app as celery_app
from tests.factories import AccountFactory, AssetFactory, MarketFactory

# Tasks run inline in tests (settlement right after an engine batch commits); no broker.
celery_app.conf.task_always_eager = True
celery_app.conf.task_eager_propagates = True


@pytest.fixture(scope="session", autouse=True)
def _collected_static():
    """The production configuration serves static files only from the collected set (as a
    release runs `collectstatic`, docs/deployment.md); collect them once for the suite."""
    from django.conf import settings
    from django.core.management import call_command

    if not settings.WHITENOISE_USE_FINDERS:
        call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(scope="session", autouse=True)
def _stop_verdict_listener(django_db_setup, django_db_blocker):
    """The per-process verdict listener holds a database connection; close it before the
    test database is dropped."""
    yield
    from trading.notify import VerdictWaiter

    VerdictWaiter.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _no_key_revalidator():
    """No key-cache revalidator thread in the test process: it would keep a connection to the
    test database and re-read keys behind the tests' backs (tests/apikeys/test_keycache.py
    calls ``keycache.revalidate`` itself). Servers the tests start run it as deployed."""
    from django.conf import settings

    settings.BOURSE_KEY_REVALIDATE = False
    yield


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit and replay caches must not leak between tests."""
    cache.clear()
    keycache.forget_all()  # a test that changes a key with the ORM must not meet its cached record
    from trading.notify import VerdictWaiter

    VerdictWaiter.forget_recent()  # a flushed SQLite database gives the next test's orders the same ids
    from trading.services import marketcache

    marketcache.forget()  # and its markets the same ids and symbols (with other filters)
    from apikeys.replay import mark_store_fresh

    mark_store_fresh()  # emptied on purpose, not lost: requests signed just before stay valid
    yield


@pytest.fixture(autouse=True)
def _audit_trail_in_tests(request, settings):
    """Audit events are sealed in the commit callback itself (no timer threads in tests),
    and a transactional test's audit rows are removed before Django empties the tables,
    since the append-only guard refuses the DELETE it would use on SQLite."""
    settings.BOURSE_AUDIT_SEAL_MODE = "inline"
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(marker and (marker.kwargs.get("transaction") or marker.args[:1] == (True,))) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if not transactional:
        yield
        return
    request.getfixturevalue("transactional_db")  # set up first, so torn down after us
    yield
    from tests.audit.helpers import empty_audit_trail

    empty_audit_trail()


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


@pytest.fixture
def runner(market):
    """The market's engine, run by hand: ``runner.step()`` processes pending commands."""
    from trading.models import EngineState
    from trading.runner import MarketRunner

    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "test-owner"})
    engine = MarketRunner(market, "test-owner")
    engine.rebuild()
    return engine

"""Readiness per role (trading.operations, /readyz, manage.py status): every required part
up answers 200; each one down answers 503 naming it; an optional part down is reported
without failing readiness."""
import json
import subprocess
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from exchange import heartbeat
from exchange.celery import app as celery_app
from exchange.models import Heartbeat
from tests.factories import AccountFactory
from tests.support import PYTHON, fund, subprocess_env
from trading.models import Command, EngineState, ReconciliationReport
from trading.services import order_submit

pytestmark = pytest.mark.django_db

EVERY_ROLE = ["database", "redis", "engine", "worker", "settlement", "reconciliation", "fix"]


def engine_beats(market, token="owner-token", **state):
    heartbeat.beat("engine", {"markets": {market.symbol: {"token": token, "failing": False, "refused": None, **state}}})


@pytest.fixture
def all_up(market, settings):
    """Every role up, as its processes would leave the database: the engine owns the market
    and beats, the worker and the FIX gateway beat, the last reconciliation passed."""
    settings.BOURSE_READINESS_REQUIRED = EVERY_ROLE
    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "owner-token", "owner_since": timezone.now()})
    engine_beats(market)
    heartbeat.beat("worker")
    heartbeat.beat("fix", {"address": "127.0.0.1:9878", "sessions": 0})
    ReconciliationReport.objects.create(ok=True, mismatches=0, checks=[], finished_at=timezone.now())
    return market


def ready(client):
    response = client.get("/readyz")
    return response.status_code, response.json()


def age(role: str, seconds: float) -> None:
    Heartbeat.objects.filter(role=role).update(beat_at=timezone.now() - timedelta(seconds=seconds))


def test_every_role_up_is_ready(client, all_up):
    status, body = ready(client)
    assert status == 200, body
    assert body["status"] == "ok" and body["down"] == []
    assert body["mode"] == ("embedded" if body["parts"]["database"]["vendor"] == "sqlite" else "production")
    for name in ("database", "engine", "worker", "settlement", "reconciliation", "fix", "audit"):
        assert body["parts"][name]["ok"], (name, body["parts"][name])
        assert body["checks"][name] == "ok"
    market = body["parts"]["engine"]["markets"][all_up.symbol]
    assert market["owner"] == heartbeat.instance_id() and market["pending_commands"] == 0
    assert body["parts"]["fix"]["instances"][0]["alive"] is True


def _engine_stopped(market, settings):
    age("engine", settings.BOURSE_HEARTBEAT_STALE_S + 5)


def _engine_lost_ownership(market, settings):
    EngineState.objects.filter(market=market).update(owner_token="another-process")


def _engine_failing(market, settings):
    engine_beats(market, failing=True)


def _engine_stalled(market, settings):
    trader = AccountFactory()
    fund(trader, USD="1000")
    order_submit(account=trader, market=market.symbol, side="buy", type="limit", price="10.00", quantity="1.0000")
    Command.objects.update(created_at=timezone.now() - timedelta(seconds=settings.BOURSE_ENGINE_STALL_S + 5))


def _worker_stopped(market, settings):
    age("worker", 3 * settings.BOURSE_WORKER_HEARTBEAT_S + settings.BOURSE_HEARTBEAT_STALE_S + 5)


def _fix_never_started(market, settings):
    Heartbeat.objects.filter(role="fix").delete()


def _reconciliation_failed(market, settings):
    ReconciliationReport.objects.create(ok=False, mismatches=2, finished_at=timezone.now(),
                                        checks=[{"check": "assets_conserved", "ok": False, "count": 2, "mismatches": []}])


def _reconciliation_stale(market, settings):
    ReconciliationReport.objects.update(finished_at=timezone.now() - timedelta(seconds=4 * settings.BOURSE_RECONCILE_EVERY_S + 60))


@pytest.mark.parametrize(("break_it", "part", "says"), [
    (_engine_stopped, "engine", "no live engine owns this market"),
    (_engine_lost_ownership, "engine", "no live engine owns this market"),
    (_engine_failing, "engine", "cannot run this market"),
    (_engine_stalled, "engine", "a command has waited"),
    (_worker_stopped, "worker", "no Celery worker"),
    (_fix_never_started, "fix", "never seen"),
    (_reconciliation_failed, "reconciliation", "found 2 mismatch(es)"),
    (_reconciliation_stale, "reconciliation", "finished"),
])
def test_each_role_down_is_503_naming_it(client, all_up, settings, break_it, part, says):
    break_it(all_up, settings)
    status, body = ready(client)
    assert status == 503
    assert body["status"] == "unavailable" and body["down"] == [part]
    assert body["checks"][part].startswith("error: ") and says in body["checks"][part], body["checks"][part]
    if part == "engine":
        assert not body["parts"]["engine"]["markets"][all_up.symbol]["ok"]


def test_settlement_lag_over_budget_is_503(client, all_up, settings, runner):
    # A trade left unsettled (its settlement message lost) for longer than the budget.
    celery_app.conf.task_always_eager = False
    from trading import tasks

    original = tasks.settle_market.delay
    tasks.settle_market.delay = lambda *args, **kwargs: None
    try:
        alice, bob = AccountFactory(), AccountFactory()
        fund(alice, BTC="10")
        fund(bob, USD="1000")
        order_submit(account=alice, market=all_up.symbol, side="sell", type="limit", price="100.00", quantity="1.0000")
        order_submit(account=bob, market=all_up.symbol, side="buy", type="limit", price="100.00", quantity="1.0000")
        runner.step()
    finally:
        tasks.settle_market.delay = original
        celery_app.conf.task_always_eager = True
    from trading.models import Trade

    assert Trade.objects.filter(settled=False).count() == 1
    EngineState.objects.filter(market=all_up).update(owner_token="owner-token")  # the runner fixture took it
    status, body = ready(client)
    assert status == 200, body["checks"]  # unsettled, but within the budget
    Trade.objects.update(created_at=timezone.now() - timedelta(seconds=settings.BOURSE_SETTLEMENT_LAG_BUDGET_S + 5))
    status, body = ready(client)
    assert status == 503 and body["down"] == ["settlement"]
    assert body["parts"]["settlement"]["unsettled_trades"] == 1
    assert body["parts"]["settlement"]["lag_s"] > settings.BOURSE_SETTLEMENT_LAG_BUDGET_S


def test_redis_down_is_503_naming_it(client, all_up, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    status, body = ready(client)
    assert status == 503 and body["down"] == ["redis"]
    assert body["checks"]["redis"].startswith("error: ConnectionError")


def test_an_optional_part_down_is_reported_but_ready(client, all_up, settings):
    settings.BOURSE_READINESS_REQUIRED = [p for p in EVERY_ROLE if p != "fix"]  # no FIX gateway in this deployment
    Heartbeat.objects.filter(role="fix").delete()
    status, body = ready(client)
    assert status == 200
    assert body["parts"]["fix"] == {**body["parts"]["fix"], "ok": False, "required": False}


def test_status_command_prints_the_report_and_exits_1_when_down(all_up, capsys):
    call_command("status")
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "ok"
    Heartbeat.objects.filter(role="worker").delete()
    with pytest.raises(SystemExit) as exit_info:
        call_command("status", "--brief")
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "worker" in out and "required  error: no Celery worker" in out and out.rstrip().endswith("status: unavailable")


def test_database_down_is_named_by_status_and_the_rest_unknown(tmp_path):
    # A real process whose database cannot be reached (nothing listens on port 1).
    env = {**subprocess_env(), "DATABASE_URL": "postgres://bourse@127.0.0.1:1/bourse", "REDIS_URL": ""}
    done = subprocess.run([PYTHON, "manage.py", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["down"][0] == "database" and report["checks"]["database"].startswith("error: OperationalError")
    assert report["parts"]["engine"]["error"] == "unknown: the database is unreachable"

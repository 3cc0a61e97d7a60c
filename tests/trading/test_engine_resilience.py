"""The engine never crash-loops: a command it cannot process is quarantined (its order
rejected with ``engine_error``, an alert logged, an audit event written) and the market goes
on; a market whose book cannot run at all is retried with back-off while the other markets
go on; runtime checks are errors, not ``assert``; the embedded supervisor restarts a dead
role with back-off and gives up after a bound, saying so."""
import ast
import logging
import sys
import time
from pathlib import Path

import pytest

from audit.models import AuditEvent
from exchange.management.commands.run_embedded import Supervisor
from tests.factories import AccountFactory
from tests.support import balances, fund
from trading.models import Command, Market, Order
from trading.services import order_submit

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return account


def _buy(account, price, cid):
    return order_submit(account=account, market="BTC-USD", side="buy", type="limit", price=price,
                        quantity="0.0200", client_order_id=cid).order


def test_a_command_the_engine_cannot_process_is_quarantined_and_the_market_goes_on(runner, alice, market, caplog):
    # Given three pending orders, the middle one with a time in force this engine does not
    # know (written by a newer release of the web role during a rolling upgrade)
    first, poisoned, last = _buy(alice, "100.00", "a"), _buy(alice, "100.01", "b"), _buy(alice, "100.05", "c")
    Order.objects.filter(pk=poisoned.pk).update(time_in_force="day")
    # When the engine runs
    with caplog.at_level(logging.CRITICAL, logger="bourse.engine"):
        processed = runner.step()
        processed += runner.step()
    # Then the others went through and the poisoned one was set aside, not retried forever
    assert processed == 3
    statuses = {o.client_order_id: (o.status, o.reject_reason) for o in Order.objects.all()}
    assert statuses == {"a": ("open", ""), "b": ("rejected", "engine_error"), "c": ("open", "")}
    command = Command.objects.get(order=poisoned)
    assert (command.processed, command.result) == (True, "quarantined")
    assert not Command.objects.filter(processed=False).exists()
    event = AuditEvent.objects.get(action="engine.command_quarantined")
    assert event.outcome == "refused" and event.reason == "KeyError"
    assert event.after["command"] == command.pk and "day" in event.after["error"]
    assert AuditEvent.objects.filter(action="order.rejected", after__reason="engine_error").count() == 1
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "engine_command_quarantined"]
    assert len(alerts) == 1 and alerts[0].order == poisoned.pk
    # the book holds exactly the good orders, and the engine keeps taking new ones
    runner.book.check_invariants()
    _buy(alice, "99.95", "d")
    assert runner.step() == 1
    assert Order.objects.get(client_order_id="d").status == "open"
    del first, last


def test_the_rejected_orders_hold_is_released_by_settlement(runner, alice, market):
    from trading.settlement import settlement_run

    before = balances(alice)["USD"]
    poisoned = _buy(alice, "100.01", "b")
    Order.objects.filter(pk=poisoned.pk).update(time_in_force="day")
    runner.step()
    settlement_run(market.pk)
    assert balances(alice)["USD"] == before


def test_one_failing_market_does_not_stop_the_others(runner, alice, market, caplog, monkeypatch, engine_process):
    class Broken:
        market = Market(symbol="BAD-USD")

        def step(self):
            raise RuntimeError("database for this market is unreadable")

        def rebuild(self):
            raise RuntimeError("still unreadable")

    process = engine_process
    process.runners = {-1: Broken(), market.pk: runner}
    _buy(alice, "100.00", "a")
    with caplog.at_level(logging.CRITICAL, logger="bourse.engine"):
        assert process.run_once() == 1  # the healthy market ran
        assert process.run_once() == 0  # the broken one is backing off: not retried at once
    assert Order.objects.get(client_order_id="a").status == "open"
    failures, retry_at = process._failing[-1]
    assert failures == 1 and retry_at > time.monotonic()
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "engine_market_failing"]
    assert len(alerts) == 1 and alerts[0].market == "BAD-USD"
    process._failing[-1] = (1, 0.0)  # back-off over: retried (rebuild first), fails again, longer wait
    process.run_once()
    assert process._failing[-1][0] == 2


def _type_narrowing(node: ast.Assert) -> bool:
    """``assert x is not None`` / ``assert isinstance(x, T)``: a narrowing for the type checker
    of what the database guarantees (docs/architecture.md), not a check anything relies on."""
    return _narrows(node.test)


def _narrows(test: ast.expr) -> bool:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return all(_narrows(value) for value in test.values)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot):
        return isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None
    return isinstance(test, ast.Call) and getattr(test.func, "id", None) == "isinstance"


def test_runtime_checks_are_errors_not_asserts():
    """``python -O`` strips ``assert``: no application module may rely on one for a check."""
    offenders = []
    for package in ("accounts", "apikeys", "audit", "exchange", "matching", "trading"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Assert) and not _type_narrowing(node):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_embedded_supervisor_backs_off_and_gives_up_saying_so():
    said = []
    crashing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    healthy = [sys.executable, "-c", "import time; time.sleep(30)"]
    supervisor = Supervisor({"engine": crashing, "web": healthy}, said.append,
                            delay=0.05, max_delay=0.2, max_crashes=4, healthy_after=5)
    try:
        for name in supervisor.roles:
            supervisor._start(name)
        deadline = time.monotonic() + 10
        while "engine" not in supervisor.given_up and time.monotonic() < deadline:
            time.sleep(0.02)
            supervisor.poll()
        assert supervisor.given_up == {"engine"}
        assert said[:3] == [
            "role engine exited with 3; restarting in 0.05s (attempt 1 of 3)",
            "role engine exited with 3; restarting in 0.1s (attempt 2 of 3)",
            "role engine exited with 3; restarting in 0.2s (attempt 3 of 3)",
        ]
        assert said[3].startswith("role engine exited with 3, 4 times in a row within 5s of starting; giving up")
        assert supervisor.children["web"].poll() is None  # poll() only notes it; run() then stops every role
    finally:
        supervisor.stop()
    assert supervisor.children["web"].poll() is not None

"""The chaos suite (``make chaos``; CI runs it once, in the PostgreSQL + Redis part).

A whole deployment on private PostgreSQL and Redis servers (stack.py): two engines (owner and
standby), a Celery worker and beat, two REST servers (serve_http, behind the client's failover as
behind a load balancer), a WebSocket server and the FIX gateway. Under a steady signed order
load it breaks, in turn: kill -9 of the engine owner (the standby must take over; nobody
restarts it), of the Celery worker, of a REST worker, of the WebSocket server and of the FIX
gateway (each started again, as a supervisor would); Redis stopped for 10 s; PostgreSQL
stopped and started again (nobody restarts any role after those two). After each fault:
every acknowledged order exists with the engine's verdict, no fill is duplicated, per-asset
balance totals are unchanged, no balance is negative, ``reconcile`` and ``audit_verify`` pass,
no answer was a 500 or a traceback (an outage is a problem+json 503), and every role serves
again by itself. The time to recover is printed per fault.
"""
from __future__ import annotations

import json
import time

import pytest

from .clients import OrderLoad, RestClient, Trader, engine_answers, fix_answers, wait_until, ws_answers
from .stack import Stack

# Each wait is bounded (RECOVERY_BOUND_S, the checks' drain); the whole run takes a few minutes,
# longer on a loaded machine, so the suite-wide 600 s timeout is raised for it.
pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(1200)]

RECOVERY_BOUND_S = 90.0  # a role that does not serve again within this is a failure
REDIS_OUTAGE_S = 10.0
POSTGRES_OUTAGE_S = 5.0


@pytest.fixture
def stack():
    stack = Stack(with_redis=True)
    try:
        stack.migrate_and_seed()
        yield stack
    finally:
        stack.destroy()


class Chaos:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.traders = [Trader(int(c["account_id"]), c["key_id"], c["secret"])
                        for name, c in stack.credentials.items() if name in ("alice", "bob")]
        stack.add_standard_roles(rest_workers=2)
        self.rest_ports = [stack.roles["rest-1"].port, stack.roles["rest-2"].port]
        self.client = RestClient(self.rest_ports)
        self.load: OrderLoad | None = None
        self.totals: dict | None = None
        self.acked: list[tuple[int, str]] = []  # every order a client saw acknowledged so far

    # -- start ------------------------------------------------------------------------------
    def start_all(self) -> None:
        for name in ("engine-a", "worker", "beat", "rest-1", "rest-2", "ws", "fix"):
            self.stack.start(name)
        for name in ("rest-1", "rest-2", "ws", "fix"):
            self.stack.wait_serving(name, timeout=120)
        self.expect(lambda: engine_answers(self.client, self.traders[0]), "the engine answers orders", "engine-a")
        self.stack.start("engine-b")
        self.expect(lambda: "engine starting" in self.stack.log("engine-b"), "the standby engine starts", "engine-b")
        self.expect(lambda: self.stack.engine_owner() == "engine-a", "engine-a owns the market", "engine-a")
        self.totals = self.check("start")["totals"]

    def expect(self, predicate, what: str, *roles: str, timeout: float = RECOVERY_BOUND_S) -> float:
        took = wait_until(predicate, timeout)
        if took is None:
            logs = "\n".join(f"--- {r}:\n{self.stack.log(r)}" for r in roles)
            raise AssertionError(f"not within {timeout:.0f}s: {what}\n{logs}")
        return took

    # -- the load and the checks --------------------------------------------------------------
    def start_load(self) -> None:
        self.load = OrderLoad(self.rest_ports, self.traders, threads=2, pause_s=0.05)
        self.load.start()

    def pause_load(self):
        assert self.load is not None
        result = self.load.stop()
        self.load = None
        return result

    def check(self, after: str) -> dict:
        """Invariants, then ``reconcile`` and ``audit_verify`` (invariants.py), with the load paused."""
        (self.stack.folder / "state.json").write_text(json.dumps({"acked": self.acked, "totals": self.totals}))
        invariants = self.stack.check()
        assert not invariants["problems"], f"after {after}: " + "\n".join(invariants["problems"])
        return invariants

    # -- faults -------------------------------------------------------------------------------
    def serves(self, name: str) -> bool:
        trader = self.traders[0]
        if name.startswith("rest"):
            client = RestClient([self.stack.roles[name].port])
            try:
                return engine_answers(client, trader)
            finally:
                client.close()
        if name == "ws":
            return ws_answers(self.stack.roles["ws"].port, trader, self.client)
        if name == "fix":
            return fix_answers(self.stack.roles["fix"].port, trader)
        if name == "worker":
            return "ready." in self.stack.log("worker", 200_000)
        return engine_answers(self.client, trader)

    def everything_serves(self) -> bool:
        return all(self.serves(name) for name in ("engine", "rest-1", "rest-2", "ws", "fix"))

    def kill_and_restart(self, name: str) -> float:
        began = time.monotonic()
        self.stack.kill(name)
        self.stack.start(name)  # the supervisor's restart
        self.expect(lambda: self.serves(name), f"{name} serves again after kill -9 and restart", name)
        return time.monotonic() - began

    def kill_engine_owner(self) -> float:
        owner = self.stack.engine_owner()
        assert owner is not None, "no engine owns the market"
        standby = ({"engine-a", "engine-b"} - {owner}).pop()
        began = time.monotonic()
        self.stack.kill(owner)
        self.expect(lambda: engine_answers(self.client, self.traders[0]), "the standby takes over", standby)
        took = time.monotonic() - began
        assert self.stack.engine_owner() == standby
        self.stack.start(owner)  # back as the new standby
        self.expect(lambda: "engine starting" in self.stack.log(owner), f"{owner} restarts as standby", owner)
        return took

    def outage(self, what: str, stop, start, seconds: float) -> float:
        before = dict(self.load.result.statuses) if self.load else {}
        stop()
        time.sleep(seconds)
        start()
        back = time.monotonic()
        self.expect(self.everything_serves, f"every role serves again after {what}", *self.stack.roles)
        took = time.monotonic() - back
        dead = [name for name, role in self.stack.roles.items() if not role.alive()]
        assert not dead, f"roles exited during {what} (nobody restarts them): {dead}\n" + "\n".join(
            self.stack.log(name) for name in dead)
        assert self.load is not None
        seen_503 = self.load.result.statuses.get("503", 0) - before.get("503", 0)
        assert seen_503 > 0, f"no client saw a 503 during {what}: {self.load.result.statuses}"
        return took


def test_chaos(stack):
    chaos = Chaos(stack)
    chaos.start_all()
    redis, pg = stack.redis, stack.pg
    assert redis is not None
    faults = [
        ("kill -9 engine owner (standby takes over)", chaos.kill_engine_owner),
        ("kill -9 Celery worker", lambda: chaos.kill_and_restart("worker")),
        ("kill -9 REST worker", lambda: chaos.kill_and_restart("rest-1")),
        ("kill -9 WebSocket server", lambda: chaos.kill_and_restart("ws")),
        ("kill -9 FIX gateway", lambda: chaos.kill_and_restart("fix")),
        (f"Redis stopped {REDIS_OUTAGE_S:.0f}s", lambda: chaos.outage("the Redis outage", redis.stop, redis.start, REDIS_OUTAGE_S)),
        (f"PostgreSQL stopped {POSTGRES_OUTAGE_S:.0f}s and started",
         lambda: chaos.outage("the PostgreSQL restart", pg.stop, pg.start, POSTGRES_OUTAGE_S)),
    ]
    lines = []
    for what, fault in faults:
        chaos.start_load()
        time.sleep(2)  # the load runs before the fault
        took = fault()
        time.sleep(1)  # and after it
        result = chaos.pause_load()
        chaos.acked.extend(result.acked)
        assert not result.bad, f"{what}: answers that are not problem+json 503s:\n" + "\n".join(result.bad[:10])
        checked = chaos.check(what)
        line = (f"chaos: {what}: recovered in {took:.2f}s; answers {dict(sorted(result.statuses.items()))}; "
                f"{checked['orders']} orders, {checked['trades']} trades, invariants hold")
        print(line)
        lines.append(line)
    print("\n".join(["", "chaos suite: recovery times", *lines]))

"""A PostgreSQL restart does not end the engine processes: owner and standby reconnect with
back-off, one of them owns the market again under a new fencing token, and matching resumes
without anyone restarting anything. On a private PostgreSQL (tests/chaos/instances.py)."""
import time

import pytest

from .clients import RestClient, Trader, engine_answers, wait_until
from .instances import postgres_pass_only
from .stack import Stack

pytestmark = [pytest.mark.slow, postgres_pass_only]


@pytest.fixture
def stack():
    stack = Stack(with_redis=True)
    try:
        stack.migrate_and_seed()
        yield stack
    finally:
        stack.destroy()


def traders(stack) -> list[Trader]:
    return [Trader(int(c["account_id"]), c["key_id"], c["secret"])
            for name, c in stack.credentials.items() if name in ("alice", "bob")]


def test_engines_survive_a_postgresql_restart_and_one_owns_the_market_again(stack):
    stack.add_standard_roles()
    for name in ("engine-a", "rest"):
        stack.start(name)
    stack.wait_serving("rest")
    alice, _ = traders(stack)
    client = RestClient([stack.roles["rest"].port])
    try:
        assert wait_until(lambda: engine_answers(client, alice), 60) is not None, (client.last, stack.log("engine-a"))
        stack.start("engine-b")
        assert wait_until(lambda: stack.engine_owner() == "engine-a", 30) is not None
        assert wait_until(lambda: "engine starting" in stack.log("engine-b"), 60) is not None, stack.log("engine-b")
        time.sleep(2)  # the standby is connected and polls for the lock

        stack.pg.restart()
        restarted = time.monotonic()
        recovered = wait_until(lambda: engine_answers(client, alice), 60)
        assert recovered is not None, f"matching did not resume:\n{stack.log('engine-a')}\n{stack.log('engine-b')}"
        print(f"matching resumed {time.monotonic() - restarted:.2f}s after PostgreSQL restarted")
        for name in ("engine-a", "engine-b"):
            assert stack.roles[name].alive(), f"{name} died:\n{stack.log(name)}"
            # Each finds the loss at its next database call: the owner at its first batch or
            # check, the standby at its next poll for the lock (every ACQUIRE_EVERY_S) — not
            # necessarily before the owner's first answer after the restart.
            assert wait_until(lambda name=name: "engine lost the database; reconnecting" in stack.log(name, 200_000), 15) \
                is not None, stack.log(name, 200_000)
        assert stack.engine_owner() in ("engine-a", "engine-b")  # exactly one (raises on two)

        # The standby still takes over when the owner dies after the restart.
        owner = stack.engine_owner()
        stack.kill(owner)
        assert wait_until(lambda: engine_answers(client, alice), 60) is not None
        assert stack.engine_owner() == ({"engine-a", "engine-b"} - {owner}).pop()
    finally:
        client.close()

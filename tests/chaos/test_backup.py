"""Backups (docs/operations.md "Backups and restore"): a dump taken of a running system
under a signed order load restores into a fresh database on which ``reconcile`` and
``audit_verify`` pass. PostgreSQL: ``pg_dump -Fc`` + ``pg_restore`` (private server,
tests/chaos/instances.py). Embedded SQLite: ``VACUUM INTO`` (what ``sqlite3 DB ".backup FILE"``
also does safely) of the live WAL database while an engine trades on it."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time

import pytest

from .clients import OrderLoad, RestClient, Trader, engine_answers, wait_until
from .instances import embedded_pass_only, postgres_pass_only
from .stack import PYTHON, ROOT, Stack

pytestmark = pytest.mark.slow


@postgres_pass_only
def test_pg_dump_of_a_running_system_restores_into_a_database_that_reconciles():
    stack = Stack(with_redis=True)
    try:
        stack.migrate_and_seed()
        stack.add_standard_roles()
        for name in ("engine-a", "worker", "rest"):
            stack.start(name)
        stack.wait_serving("rest", timeout=120)
        traders = [Trader(int(c["account_id"]), c["key_id"], c["secret"])
                   for name, c in stack.credentials.items() if name in ("alice", "bob")]
        client = RestClient([stack.roles["rest"].port])
        assert wait_until(lambda: engine_answers(client, traders[0]), 90) is not None, stack.log("engine-a")
        client.close()
        load = OrderLoad([stack.roles["rest"].port], traders, threads=2, pause_s=0.02)
        load.start()
        time.sleep(3)
        dump = stack.folder / "bourse.dump"
        # The documented command: a consistent snapshot, taken while the load goes on.
        subprocess.run([str(stack.pg.bin / "pg_dump"), "-Fc", "-f", str(dump), stack.database_url],
                       check=True, capture_output=True, timeout=300)
        time.sleep(1)
        result = load.stop()
        assert len(result.acked) > 10, f"too little load to prove anything: {result.statuses}"
        assert not result.bad, result.bad[:5]

        restored = stack.pg.create_database("restored")
        subprocess.run([str(stack.pg.bin / "pg_restore"), "--no-owner", "--exit-on-error", "-d", restored, str(dump)],
                       check=True, capture_output=True, timeout=300)
        env = {"DATABASE_URL": restored}
        counts = stack.python(
            "from trading.models import Order, Trade; print(Order.objects.count(), Trade.objects.count())", env=env
        ).split()
        assert int(counts[0]) > 10 and int(counts[1]) > 0, counts
        for command in ("reconcile", "audit_verify"):
            done = stack.manage(command, env=env, check=False)
            assert done.returncode == 0, f"{command} on the restored copy: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    finally:
        stack.destroy()


@embedded_pass_only
def test_sqlite_vacuum_into_of_a_running_embedded_system_reconciles(tmp_path):
    """Embedded mode: the backup is taken while a process writes (orders, the engine's batches,
    settlement) to the WAL database; the copy passes ``reconcile`` and ``audit_verify``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "BOURSE_"))}
    env.update({"BOURSE_DATA_DIR": str(tmp_path / "data"), "BOURSE_ALLOW_GENERATED_SECRETS": "1",
                "CELERY_TASK_ALWAYS_EAGER": "1", "BOURSE_AUDIT_SEAL_MODE": "inline", "PYTHONUNBUFFERED": "1"})

    def manage(*args, extra=None):
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env={**env, **(extra or {})},
                              capture_output=True, text=True, timeout=300)

    for args in (("migrate", "--noinput"), ("seed_demo",)):
        done = manage(*args)
        assert done.returncode == 0, done.stderr[-2000:]
    trading = subprocess.Popen([PYTHON, "-c", TRADER_SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(trading.stdout), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: any(line.startswith("traded") for line in output), 120) is not None, "".join(output)
        backup = tmp_path / "backup.sqlite3"
        with sqlite3.connect(tmp_path / "data" / "bourse.sqlite3", timeout=30) as source:
            source.execute("VACUUM INTO ?", [str(backup)])  # documented; a consistent copy under writers
    finally:
        trading.terminate()
        trading.wait(timeout=30)
        reader.join(timeout=5)
    assert trading.returncode in (0, -15), "".join(output)[-3000:]
    extra = {"DATABASE_URL": f"sqlite:///{backup}"}
    for command in ("reconcile", "audit_verify"):
        done = manage(command, extra=extra)
        assert done.returncode == 0, f"{command} on the copy: {done.stdout[-2000:]} {done.stderr[-2000:]}"


# Trades for as long as it lives: orders through the service, the engine's batches, settlement
# (eager) — the writers the embedded mode has.
TRADER_SCRIPT = """
import os, random, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
django.setup()
from accounts.models import Account
from trading.models import EngineState, Market
from trading.runner import MarketRunner
from trading.services import order_submit
from trading.settlement import settlement_run
market = Market.objects.get(symbol="BTC-USD")
EngineState.objects.update_or_create(market=market, defaults={"owner_token": "backup-test"})
runner = MarketRunner(market, "backup-test")
runner.rebuild()
alice, bob = Account.objects.get(name="alice"), Account.objects.get(name="bob")
rng = random.Random(6)
n = 0
while True:
    for account, side in ((alice, "sell"), (bob, "buy")):
        order_submit(account=account, market="BTC-USD", side=side, type="limit",
                     price=f"{100 + rng.randint(-3, 3) / 100:.2f}", quantity="0.0200", wait=0)
    runner.step()
    settlement_run(market.pk)
    n += 1
    if n == 20:
        print("traded", flush=True)
"""

"""PostgreSQL's CPU per order for what an order writes, phase by phase: this tree's schema and
code against a baseline commit's, alternately, each on its own fresh database.

What is measured is the database's side of the order path (index and heap writes, triggers,
constraint checks), which the REST benchmarks mix with everything else. Each tree (the
baseline is ``git archive``d into a temporary folder) migrates its own database
(``<database>_a`` for the baseline, ``<database>_b`` for this tree; created and dropped here),
then in one process, with no server, after a warm-up of 300 orders through every phase:
places N orders through ``order_submit`` (a seeded mix of passive and crossing limits from 20
accounts, no verdict awaited), runs the market's engine
(``MarketRunner.step`` in batches of ``--batch``) until every command is processed, settles
every trade (``settlement_run``) and seals the audit chain (``audit_seal``). For each phase it
prints PostgreSQL's CPU per order (the CPU of this database's backends, from /proc), the
client's, and the write-ahead log written per order — records and bytes, read back with
``pg_walinspect`` (PostgreSQL's contrib extension, created in the two databases; without it,
bytes only, from the insert position). The WAL figures are the whole server's: run this on an
otherwise idle PostgreSQL. Then each figure's ratio to the baseline's, medians over the
rounds, with the load average. The tree measured first alternates by round. The first round
runs on the freshly created databases and costs both trees more (~2.5×): use five rounds or
more and read the medians.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_write REDIS_URL=redis://127.0.0.1:6379/5 \\
    BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=var/bench LOG_LEVEL=WARNING \\
    .venv/bin/python bench/write_cost.py --baseline a60db57 --orders 3000 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("submit", "engine", "settle", "seal")

ONE_TREE = r'''
import os, random, sys, time
root, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
os.chdir(root)
import django
django.setup()
from decimal import Decimal
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
call_command("migrate", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("VACUUM (ANALYZE)")  # the previous rounds' rows: the same start for both trees
    try:
        with transaction.atomic():
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        walinspect = True
    except DatabaseError:
        walinspect = False
from accounts import services as account_services
from audit.sealer import audit_seal
from trading.models import EngineState, Market
from trading.runner import MarketRunner
from trading.services import market_create, order_submit
from trading.settlement import settlement_run

def cpu_of(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def wal_position():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]

def wal_since(start):
    """(records, bytes) written by the whole server since ``start``; records -1 without pg_walinspect."""
    with connection.cursor() as cursor:
        if walinspect:
            cursor.execute("SELECT count(*), coalesce(sum(record_length), 0) "
                           "FROM pg_get_wal_records_info(%s::pg_lsn, pg_current_wal_flush_lsn())", [start])
            records, size = cursor.fetchone()
            return int(records), int(size)
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", [start])
        return -1, int(cursor.fetchone()[0])

def backends():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]

tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
market, _ = market_create(symbol=f"W{tag}-USD", tick_size="0.01", lot_size="0.0001", min_notional="1",
                          maker_fee_rate="0.001", taker_fee_rate="0.002", base_scale=8, quote_scale=6)
market = Market.objects.select_related("base", "quote").get(pk=market.pk)
traders = []
for i in range(20):
    account = account_services.account_create(name=f"w-{tag}-{i}")
    account_services.balance_deposit(account=account, asset="USD", amount="100000000")
    account_services.balance_deposit(account=account, asset=market.base_id, amount="1000000")
    traders.append(account)
audit_seal()
rng = random.Random(1)

def submit(n=count):
    for _ in range(n):
        side = rng.choice(["buy", "sell"])
        offset = rng.randint(-20, 60)  # mostly passive, some crossing
        price = Decimal(10000 + (-offset if side == "buy" else offset)) / 100
        order_submit(account=rng.choice(traders), market=market.symbol, side=side, type="limit",
                     price=f"{price:.2f}", quantity=f"{Decimal(rng.randint(200, 3000)) / 10000:.4f}")

EngineState.objects.update_or_create(market=market, defaults={"owner_token": "bench"})
runner = MarketRunner(market, "bench")

def run_engine():
    runner.rebuild()
    while runner.step(batch):
        pass

def settle():
    while any(settlement_run(market.pk)):  # (trades settled, orders closed)
        pass

# Warm-up, not measured: a new backend fills its catalog caches, the process its own.
submit(300)
run_engine()
settle()
audit_seal()
for name, phase in (("submit", submit), ("engine", run_engine), ("settle", settle), ("seal", audit_seal)):
    pg_before = {p: cpu_of(p) for p in backends()}
    wal_start = wal_position()
    client = time.process_time()
    phase()
    client = time.process_time() - client
    pg = sum(cpu - pg_before.get(p, 0.0) for p, cpu in ((p, cpu_of(p)) for p in backends()))
    records, size = wal_since(wal_start)
    print("RESULT", name, pg * 1000 / count, client * 1000 / count, open("/proc/loadavg").read().split()[0],
          records / count, size / count, flush=True)
'''


def _database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(_database(url, "postgres"), autocommit=True) as connection:
        connection.execute(statement)


def run_tree(root: Path, url: str, count: int, batch: int) -> dict[str, tuple[float, float, str, float, float]]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "exchange.settings", "DATABASE_URL": url,
           "BOURSE_ENGINE_WAIT_S": "0", "BOURSE_AUDIT_SEAL_MODE": "off"}
    out = subprocess.run([sys.executable, "-c", ONE_TREE, str(root), str(count), str(batch)], capture_output=True,
                         text=True, timeout=1800, env=env)
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            _, phase, pg, client, load, records, size = line.split()
            results[phase] = (float(pg), float(client), load, float(records), float(size))
    if set(results) != set(PHASES):
        raise SystemExit(f"{root}: no result\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="b960235", help="the commit to compare against")
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=5, help="engine batch size (what REST load gives it)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must name a PostgreSQL database (its name is the prefix of the two made here)")
    prefix = urlsplit(url).path.lstrip("/")
    trees = {"baseline": f"{prefix}_a", "this tree": f"{prefix}_b"}
    figures: dict[str, dict[str, list[tuple[float, float, float, float]]]] = {label: {} for label in trees}
    with tempfile.TemporaryDirectory(prefix="bourse-baseline-") as folder:
        baseline = Path(folder)
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        roots = {"baseline": baseline, "this tree": ROOT}
        for name in trees.values():
            _admin(url, f'DROP DATABASE IF EXISTS "{name}"')
            _admin(url, f'CREATE DATABASE "{name}"')
        try:
            for round_ in range(args.rounds):
                # The tree measured first alternates by round: the load rises through a round,
                # and the second tree would otherwise always pay for it.
                for label, name in list(trees.items())[:: 1 if round_ % 2 == 0 else -1]:
                    results = run_tree(roots[label], _database(url, name), args.orders, args.batch)
                    for phase, (pg, client, _load, records, size) in results.items():
                        figures[label].setdefault(phase, []).append((pg, client, records, size))
                    print(f"[load {results['seal'][2]}] {label:9}: PostgreSQL ms/order " + ", ".join(
                        f"{phase} {results[phase][0]:.3f}" for phase in PHASES)
                        + f"; total {sum(results[p][0] for p in PHASES):.3f}; WAL records/order "
                        + ", ".join(f"{phase} {results[phase][3]:.1f}" for phase in PHASES)
                        + f"; bytes/order {sum(results[p][4] for p in PHASES):.0f}", flush=True)
        finally:
            for name in trees.values():
                _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"medians over {args.rounds} rounds, {args.orders} orders each (baseline {args.baseline}):")
    totals = {}
    wal = {}

    def median(label: str, phase: str, index: int) -> float:
        return statistics.median(figure[index] for figure in figures[label][phase])

    for label in trees:
        totals[label] = sum(median(label, phase, 0) for phase in PHASES)
        wal[label] = (sum(median(label, phase, 2) for phase in PHASES), sum(median(label, phase, 3) for phase in PHASES))
    for phase in PHASES:
        old, new = median("baseline", phase, 0), median("this tree", phase, 0)
        print(f"  {phase:6}: PostgreSQL {new:.3f} vs {old:.3f} ms/order (ratio {new / max(old, 1e-9):.2f}); "
              f"client {median('this tree', phase, 1):.3f} vs {median('baseline', phase, 1):.3f} ms; "
              f"WAL {median('this tree', phase, 2):.1f} vs {median('baseline', phase, 2):.1f} records/order, "
              f"{median('this tree', phase, 3):.0f} vs {median('baseline', phase, 3):.0f} bytes/order")
    print(f"  total : PostgreSQL {totals['this tree']:.3f} vs {totals['baseline']:.3f} ms/order "
          f"(ratio {totals['this tree'] / totals['baseline']:.2f}); WAL {wal['this tree'][0]:.1f} vs "
          f"{wal['baseline'][0]:.1f} records/order (ratio {wal['this tree'][0] / max(wal['baseline'][0], 1e-9):.2f}), "
          f"{wal['this tree'][1]:.0f} vs {wal['baseline'][1]:.0f} bytes/order "
          f"(ratio {wal['this tree'][1] / max(wal['baseline'][1], 1e-9):.2f}); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

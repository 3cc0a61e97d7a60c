"""The engine's batch of ONE order, which is what it runs at low and moderate rates (every
FIX order at 100/s, every REST placement of a closed loop): its statements, its wall time
and its CPU.

In one process, against the database configured by DATABASE_URL: ``--orders`` passive limit
orders (``--cross`` of them crossing the resting ones, so a share of the batches write trades
and fills) are submitted with no engine running; then one ``MarketRunner`` takes them one per
batch (``step(1)``), each batch timed (wall, ``time.thread_time``) and its statements
counted. Baseline in the same run: a bare ``SELECT 1`` round trip.

Usage (creates its own market; migrate first):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \\
        .venv/bin/python bench/engine_small_batch.py [--orders 2000] [--rounds 3]
"""
import argparse
import os
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from benchdb import prepare  # noqa: E402
from django.db import connection  # noqa: E402
from engine_process import percentile, setup  # noqa: E402

from trading.models import EngineState, Order  # noqa: E402
from trading.runner import MarketRunner  # noqa: E402
from trading.services import order_submit  # noqa: E402


class Counter:
    """Counts the statements Django sends (``execute_wrapper``; ``executemany`` counts once)."""

    def __init__(self):
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)


def run(count: int, cross: float) -> dict:
    market, traders = setup(uuid.uuid4().hex[:6].upper())
    rng = random.Random(7)
    for n in range(count):
        side = "buy" if n % 2 == 0 else "sell"
        crossing = rng.random() < cross
        price = Decimal("100.00") if crossing else (Decimal("90.00") if side == "buy" else Decimal("110.00"))
        order_submit(account=traders[n % len(traders)], market=market.symbol, side=side, type="limit",
                     price=f"{price:.2f}", quantity="0.1000")
    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "small"})
    runner = MarketRunner(market, "small")
    runner.rebuild()
    runner.step(1)  # warm: the first batch compiles and prepares what the others reuse
    counter = Counter()
    walls, cpus = [], []
    with connection.execute_wrapper(counter):
        while True:
            wall, cpu = time.perf_counter(), time.thread_time()
            done = runner.step(1)
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
            if not done:
                break
            walls.append(wall)
            cpus.append(cpu)
    selects = []
    with connection.cursor() as cursor:
        for _ in range(200):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            selects.append(time.perf_counter() - started)
    batches = len(walls)
    return {"batches": batches, "statements": counter.statements / max(1, batches),
            "wall_p50": percentile(walls, 0.5) * 1000, "wall_p99": percentile(walls, 0.99) * 1000,
            "cpu": sum(cpus) / max(1, batches) * 1000, "select1": percentile(selects, 0.5) * 1000,
            "left": Order.objects.filter(market=market, status="pending").count()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--cross", type=float, default=0.2, help="share of the orders that cross (trade)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(prepare())
    print(f"{'round':>5} {'batches':>7} {'stmts/batch':>11} {'wall p50':>9} {'wall p99':>9} {'CPU/batch':>9} "
          f"{'SELECT 1':>9} {'load':>5}")
    for n in range(1, args.rounds + 1):
        r = run(args.orders, args.cross)
        assert r["left"] == 0, f"{r['left']} orders left pending"
        print(f"{n:>5} {r['batches']:>7} {r['statements']:>11.1f} {r['wall_p50']:>7.2f}ms {r['wall_p99']:>7.2f}ms "
              f"{r['cpu']:>7.3f}ms {r['select1']:>7.3f}ms {os.getloadavg()[0]:>5.1f}")


if __name__ == "__main__":
    main()

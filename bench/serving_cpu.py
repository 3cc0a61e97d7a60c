"""CPU per signed request in ONE REST process, this tree against a baseline commit, same run.

Each tree (the baseline is `git archive`d into a temporary folder) starts its documented REST
server (`manage.py serve_http --processes 1`, no engine: placements answer 202 `pending`),
and one keep-alive connection sends N signed `GET /api/v1/account`, then N signed
`POST /api/v1/orders`, one at a time. Printed per tree and kind: the server process's CPU
per request (from /proc: what the request costs the server, whatever else runs on the
machine), PostgreSQL's CPU per request (the backends connected to this database), the wall time per request, and the
load average; then each figure's ratio to the baseline's. The trees run alternately,
`--rounds` times, on the same database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
    BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=var/bench LOG_LEVEL=WARNING \\
    .venv/bin/python bench/serving_cpu.py --baseline ed02e43 --requests 800 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_TREE = r'''
import asyncio, os, random, sys, time
root, count = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, root)
os.chdir(root)
sys.argv = [sys.argv[0]]
import bench.rest_load as rl
from django.core.management import call_command
from apikeys.services import trader_create
from trading.services import market_create
call_command("migrate", verbosity=0)
tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
symbol = f"S{tag}-USD"
market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1", maker_fee_rate="0.001",
              taker_fee_rate="0.002", base_scale=8, quote_scale=6)
made = trader_create(name=f"s-{tag}", deposits=[("USD", "100000000"), (f"S{tag}", "1000000")])
trader = {"key_id": made.credentials.key.key_id, "secret": made.credentials.secret}
class Args: threads = 16; processes = 1
port, server = rl.start_server(Args, {**os.environ, **rl.SERVER_ENV, "BOURSE_ENGINE_WAIT_S": "0"}, 1, 16)
rng = random.Random(1)
from django.db import connection
def backends():  # this database's backends only (not other people's, nor the server's shared processes)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]
async def run(kind, n):
    conn = rl.Connection(port, trader)
    await conn.open()
    for _ in range(n):
        if kind == "GET":
            status, _ = await conn.request("GET", "/api/v1/account")
        else:
            status, _ = await conn.request("POST", "/api/v1/orders", rl.order_body(rng, symbol))
        assert status in (200, 201, 202), status
try:
    asyncio.run(run("GET", 200))
    asyncio.run(run("POST", 100))  # warm: imports, connections, caches
    for kind in ("GET", "POST"):
        pids = rl._tree(server.pid)
        pg_before = {p: rl._cpu_of(p) for p in backends()}
        before, started = sum(rl._cpu_of(p) for p in pids), time.perf_counter()
        asyncio.run(run(kind, count))
        wall = time.perf_counter() - started
        cpu = sum(rl._cpu_of(p) for p in pids) - before
        pg = sum(c - pg_before.get(p, 0.0) for p, c in ((p, rl._cpu_of(p)) for p in backends()))
        print("RESULT", kind, cpu * 1000 / count, pg * 1000 / count, wall * 1000 / count,
              open("/proc/loadavg").read().split()[0], flush=True)
finally:
    rl.stop(server)
'''


def run_tree(root: Path, count: int) -> dict[str, tuple[float, float, float, str]]:
    out = subprocess.run([sys.executable, "-c", ONE_TREE, str(root), str(count)], capture_output=True, text=True,
                         timeout=900, env={**os.environ, "DJANGO_SETTINGS_MODULE": "exchange.settings"})
    results = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            _, kind, cpu, pg, wall, load = line.split()
            results[kind] = (float(cpu), float(pg), float(wall), load)
    if not results:
        raise SystemExit(f"{root}: no result\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="ed02e43", help="the commit to compare against")
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bourse-baseline-") as folder:
        baseline = Path(folder)
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        figures: dict[str, dict[str, list[tuple[float, float, float]]]] = {"baseline": {}, "this tree": {}}
        for _ in range(args.rounds):
            for label, root in (("baseline", baseline), ("this tree", ROOT)):
                for kind, (cpu, pg, wall, load) in run_tree(root, args.requests).items():
                    figures[label].setdefault(kind, []).append((cpu, pg, wall))
                    print(f"[load {load}] {label:9} {kind:4}: REST process CPU {cpu:.2f} ms/request, "
                          f"PostgreSQL {pg:.2f} ms, wall {wall:.2f} ms", flush=True)
    for kind in ("GET", "POST"):
        old = [statistics.median(v) for v in zip(*figures["baseline"][kind], strict=True)]
        new = [statistics.median(v) for v in zip(*figures["this tree"][kind], strict=True)]
        print(f"{kind} (medians; baseline {args.baseline}): REST process CPU {new[0]:.2f} vs {old[0]:.2f} ms "
              f"(ratio {new[0] / old[0]:.2f}), PostgreSQL {new[1]:.2f} vs {old[1]:.2f} ms "
              f"(ratio {new[1] / max(old[1], 1e-9):.2f}), wall {new[2]:.2f} vs {old[2]:.2f} ms")


if __name__ == "__main__":
    main()

"""The FIX report reader's tail read, alone: the function it calls now (``bourse_outbox_tail``,
migration trading/0013: a generic plan kept for the connection, one index range per (account,
market) above the floor) against the prepared statement it sent before (a join of the floors
as parameters, which PostgreSQL planned anew on every run), alternately on one connection.

What the reader does after each engine batch: read a FIX account's new ``orders``/``fills``
events above each market's floor. The floors are the top of the outbox (nothing new: the
common case between batches) or a few events below it. Prints, per form, the wall time per
read and PostgreSQL's CPU per read (the backend's user+system time from /proc), with their
ratio; the load average beside them.

Usage (PostgreSQL; any database with an outbox, e.g. after bench/fix_latency.py or
bench/rest_load.py; migrate first):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \\
        .venv/bin/python bench/fix_tail_read.py [--reads 2000] [--rounds 3]
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from trading.outbox.selectors import TAIL_SQL  # noqa: E402

# The statement the reader sent until the function replaced it (trading/outbox/selectors.py).
BEFORE_SQL = """
SELECT e.id, e.market_id, e.account_id, e.channel, e.payload
FROM trading_outboxevent e
JOIN unnest(%s::bigint[], %s::bigint[]) AS f(market_id, floor) ON e.market_id = f.market_id AND e.id > f.floor
WHERE e.account_id = ANY(%s::bigint[]) AND e.channel = ANY(%s::text[])
ORDER BY e.id
"""


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(sql: str, params: list, reads: int, pid: int) -> tuple[float, float, int]:
    cpu, started = backend_cpu(pid), time.perf_counter()
    rows = 0
    with connection.cursor() as cursor:
        for _ in range(reads):
            cursor.execute(sql, params)
            rows += len(cursor.fetchall())
    return (time.perf_counter() - started) * 1000 / reads, (backend_cpu(pid) - cpu) * 1000 / reads, rows // reads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--behind", type=int, default=3, help="events per market below the top the floors sit")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("PostgreSQL only (SQLite reads through the ORM)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM trading_outboxevent")
        total = cursor.fetchone()[0]
        # the accounts with the longest and the shortest history of orders and fills
        cursor.execute("SELECT account_id, count(*) FROM trading_outboxevent WHERE account_id IS NOT NULL "
                       "AND channel IN ('orders', 'fills') GROUP BY 1 ORDER BY 2 DESC, 1")
        counted = cursor.fetchall()
    print(f"outbox: {total} events; {args.reads} reads per form per round")
    for account, history in dict([counted[0], counted[-1]]).items():
        with connection.cursor() as cursor:
            cursor.execute("SELECT market_id, max(id) FROM trading_outboxevent WHERE market_id IS NOT NULL GROUP BY 1")
            tops = dict(cursor.fetchall())
        print(f"account {account}: {history} orders/fills events; {len(tops)} markets")
        for label, floors in (("caught up (floors at the top)", dict(tops)),
                              (f"{args.behind} events behind per market",
                               {m: top - args.behind for m, top in tops.items()})):
            params = [list(floors), list(floors.values()), [account], ["orders", "fills"]]
            for round_ in range(1, args.rounds + 1):
                load = Path("/proc/loadavg").read_text().split()[0]
                before = run(BEFORE_SQL, params, args.reads, pid)
                after = run(TAIL_SQL, params, args.reads, pid)
                print(f"  {label}, round {round_} (load {load}): function {after[0]:.3f} ms wall, {after[1]:.3f} ms "
                      f"PostgreSQL CPU per read ({after[2]} rows) | prepared join {before[0]:.3f} ms, {before[1]:.3f} ms "
                      f"({before[2]} rows) | ratio wall {after[0] / before[0]:.2f}, CPU {after[1] / max(before[1], 1e-9):.2f}")


if __name__ == "__main__":
    main()

"""What PostgreSQL's backends of one database are doing during a benchmark, and what blocks them.

Samples ``pg_stat_activity`` every ``--interval`` seconds for ``--seconds`` and prints, as the
average number of backends per sample: by state and wait event (a backend ``active`` with no
wait event is on a CPU, or waiting for one), by statement and wait, and for each backend
waiting on a lock, the statement it waits in and the one its blocker (``pg_blocking_pids``)
is running or sat idle in a transaction after. With ``--statements``, then the statements
``pg_stat_statements`` counted since ``--reset`` (the extension must be loaded: see
bench/order_path.md, "Where the time goes under load"), by WAL records, with the WAL records
per call and per ``--per`` (e.g. the placements the run made). Its times are wall times:
on a saturated machine they include waiting for a CPU and rank nothing; the WAL counts are
exact.

Run it beside a benchmark's sustained phase (the database of ``DATABASE_URL``):

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
      BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=var/bench LOG_LEVEL=WARNING
    .venv/bin/python bench/pg_waits.py --reset
    .venv/bin/python bench/rest_load.py --compare "" --seconds 3 --sustain 40 --rate 100 --warmup 2 &
    sleep 30; .venv/bin/python bench/pg_waits.py --seconds 20 --statements --per 10000
"""
from __future__ import annotations

import argparse
import collections
import os
import time

import psycopg

ACTIVITY = """
SELECT a.state, a.wait_event_type, a.wait_event, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60),
       (SELECT array_agg(left(regexp_replace(b.query, '\\s+', ' ', 'g'), 60) || ' [' || b.state || ']')
          FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(a.pid)))
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
"""

STATEMENTS = """
SELECT calls, wal_records, rows, round(total_exec_time::numeric, 0),
       left(regexp_replace(query, '\\s+', ' ', 'g'), 90)
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY wal_records DESC LIMIT %s
"""


def sample(conn: psycopg.Connection, seconds: float, interval: float) -> None:
    states: collections.Counter = collections.Counter()
    statements: collections.Counter = collections.Counter()
    blockers: collections.Counter = collections.Counter()
    samples = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for state, wait_type, wait_event, query, blocked_by in conn.execute(ACTIVITY):
            if state == "active":
                states[f"active, {wait_type}/{wait_event}" if wait_type else "active, on a CPU"] += 1
                statements[(wait_type or "CPU", query)] += 1
                for blocker in blocked_by or ():
                    blockers[(query, blocker)] += 1
            elif state == "idle in transaction":
                states["idle in transaction"] += 1
        samples += 1
        time.sleep(interval)
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{samples} samples over {seconds:g} s, load {load}; average backends per sample:")
    for key, count in states.most_common(12):
        print(f"  {count / samples:6.2f}  {key}")
    print("by statement and wait:")
    for (wait, query), count in statements.most_common(15):
        print(f"  {count / samples:6.2f}  {wait:8} {query}")
    print("waiting on a lock, and the blocker's statement:")
    for (query, blocker), count in blockers.most_common(12):
        print(f"  {count / samples:6.3f}  {query}  <-  {blocker}")


NOT_LOADED = ("pg_stat_statements is not available in this database: load it (shared_preload_libraries, "
              "then a restart; bench/order_path.md) and run with --reset before the benchmark")


def statements(conn: psycopg.Connection, per: int | None, limit: int) -> None:
    try:
        rows = conn.execute(STATEMENTS, [limit]).fetchall()
    except psycopg.Error as error:
        raise SystemExit(f"{NOT_LOADED} ({str(error).splitlines()[0]})") from None
    total = conn.execute(
        "SELECT sum(wal_records) FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0] or 0
    suffix = f", {total / per:.1f} per {per} units" if per else ""
    print(f"pg_stat_statements: {total} WAL records{suffix}; by statement (calls, WAL records, per call"
          f"{', per unit' if per else ''}, rows, wall ms):")
    for calls, wal, rows_, wall, query in rows:
        per_unit = f" {wal / per:7.1f}" if per else ""
        print(f"  {calls:8} {wal:9} {wal / max(calls, 1):7.1f}{per_unit} {rows_:8} {wall:8}  {query}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0, help="how long to sample pg_stat_activity (0: not)")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--statements", action="store_true", help="print pg_stat_statements by WAL records")
    parser.add_argument("--per", type=int, help="divide the WAL records by this (e.g. the run's placements)")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--reset", action="store_true", help="reset pg_stat_statements first")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bourse_bench")
    with psycopg.connect(url, autocommit=True) as conn:
        if args.reset:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
            except psycopg.Error as error:
                raise SystemExit(f"{NOT_LOADED} ({str(error).splitlines()[0]})") from None
        if args.seconds:
            sample(conn, args.seconds, args.interval)
        if args.statements:
            statements(conn, args.per, args.limit)


if __name__ == "__main__":
    main()

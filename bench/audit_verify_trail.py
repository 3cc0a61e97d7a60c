"""``audit_verify`` over a trail of a given size: does its rate hold as the trail grows?

``--build N`` first appends N events with one SQL statement (PostgreSQL; the database's queue
trigger queues them) and seals them with ``audit_seal`` (timed: the sealer's rate on a big
batch); then ``audit_verify`` walks the whole trail ``--walks`` times. To compare two trees,
build once with one and run the other's copy of this script on the same database without
``--build`` (the audit schema must be the same), alternately.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_verify BOURSE_ALLOW_GENERATED_SECRETS=1 \\
    BOURSE_AUDIT_SEAL_MODE=off .venv/bin/python bench/audit_verify_trail.py --build 200000 --walks 2
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

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from audit.selectors import audit_verify  # noqa: E402
from audit.services import audit_seal  # noqa: E402


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", type=int, default=0, help="append and seal this many events first")
    parser.add_argument("--walks", type=int, default=2)
    args = parser.parse_args()
    if args.build:
        if connection.vendor != "postgresql":
            raise SystemExit("--build writes with PostgreSQL's generate_series")
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, "
                "target_id, account_id, after, outcome, reason, request_id) "
                "SELECT now(), 'system', '', '', 'order.submitted', 'trading.order', n::text, n %% 1000, "
                "jsonb_build_object('price', '100.00', 'quantity', '0.5', 'n', n), 'success', '', 'r-' || n "
                "FROM generate_series(1, %s) AS n", [args.build])
        started = time.perf_counter()
        sealed = audit_seal()
        elapsed = time.perf_counter() - started
        print(f"built: {args.build} events; sealer {sealed} in {elapsed:.1f} s = {sealed / elapsed:.0f}/s (load {load()})")
    for walk in range(1, args.walks + 1):
        started = time.perf_counter()
        report = audit_verify()
        elapsed = time.perf_counter() - started
        print(f"{Path(__file__).resolve().parent.parent}: walk {walk}: {report.checked} events in {elapsed:.2f} s = "
              f"{report.checked / elapsed:.0f} events/s, ok={report.ok} (load {load()})")


if __name__ == "__main__":
    main()

"""Benchmark of the audit trail: do audited transactions wait on the hash chain, and how
fast do the sealer and ``audit_verify`` go?

Against the database configured by DATABASE_URL (PostgreSQL for the figures):

1. Writers: W processes each commit N transactions holding one ``audit_record`` (as web
   workers submitting orders would), once with after-commit sealing off and once with it on
   (``BOURSE_AUDIT_SEAL_MODE=thread``, the default). The baseline is the run with sealing
   off: the difference is what sealing costs the writers.
2. Sealer: the events left unsealed by the first run are sealed by one ``audit_seal`` call
   (events/s).
3. ``audit_verify`` over the whole trail (events/s).

Usage (migrate first; the database should be a scratch one):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \\
        .venv/bin/python bench/audit_throughput.py [--writers 4] [--transactions 5000]
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from audit.models import AuditEvent  # noqa: E402
from audit.selectors import audit_verify  # noqa: E402
from audit.services import audit_record, audit_seal  # noqa: E402


def write(count: int, tag: str) -> None:
    for i in range(count):
        with transaction.atomic():
            audit_record(
                "order.submitted", target=("trading.order", i), account=1,
                after={"price": "100.00", "quantity": "0.5", "i": i}, request_id=f"{tag}-{i}",
            )


def writers(count: int, transactions: int, mode: str) -> float:
    env = {**os.environ, "BOURSE_AUDIT_SEAL_MODE": mode}
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--write", str(transactions), f"{mode}{k}"], env=env)
        for k in range(count)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a writer failed")
    return count * transactions / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write(int(args.write[0]), args.write[1])
        return
    audit_seal()
    total = args.writers * args.transactions
    rate_off = writers(args.writers, args.transactions, "off")
    print(f"writers ({args.writers} processes), sealing off: {rate_off:.0f} audited transactions/s")
    started = time.perf_counter()
    sealed = audit_seal()
    print(f"sealer: {sealed} events in {time.perf_counter() - started:.2f}s "
          f"= {sealed / (time.perf_counter() - started):.0f} events/s")
    rate_on = writers(args.writers, args.transactions, "thread")
    unsealed = AuditEvent.objects.filter(seal__isnull=True).count()
    print(f"writers, sealing after commit: {rate_on:.0f} audited transactions/s "
          f"({rate_on / rate_off:.0%} of the baseline); unsealed when they exited: {unsealed} of {total}")
    started = time.perf_counter()
    report = audit_verify()
    elapsed = time.perf_counter() - started
    print(f"audit_verify: {report.checked} events in {elapsed:.2f}s = {report.checked / elapsed:.0f} events/s, ok={report.ok}")


if __name__ == "__main__":
    main()

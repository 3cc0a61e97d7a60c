"""``reconcile``: run the ledger proof now, print each check, exit 1 on any mismatch."""
import json

from django.core.management.base import BaseCommand, CommandError

from trading.reconciliation import CHECKS, reconciliation_run


class Command(BaseCommand):
    help = "Prove the ledger (balances = entries, assets conserved, holds = open orders, settlement lag)."

    def handle(self, *args, **opts):
        self.stdout.write(f"reconciling: {len(CHECKS)} checks on one snapshot")

        def progress(check: dict, seconds: float) -> None:  # each line as its check finishes
            status = "ok" if check["ok"] else f"MISMATCH ({check['count']})"
            self.stdout.write(f"{check['check']:<24} {status}  ({seconds:.2f} s)")
            for item in check["mismatches"][:10]:
                self.stdout.write(f"    {json.dumps(item)}")
            self.stdout.flush()

        report = reconciliation_run(progress)
        if not report.ok:
            raise CommandError(f"reconciliation report #{report.pk}: {report.mismatches} mismatches")
        self.stdout.write(f"reconciliation report #{report.pk}: ok")

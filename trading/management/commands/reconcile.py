"""``reconcile``: run the ledger proof now, print each check, exit 1 on any mismatch."""
import json

from django.core.management.base import BaseCommand, CommandError

from trading.reconciliation import reconciliation_run


class Command(BaseCommand):
    help = "Prove the ledger (balances = entries, assets conserved, holds = open orders, settlement lag)."

    def handle(self, *args, **opts):
        report = reconciliation_run()
        for check in report.checks:
            status = "ok" if check["ok"] else f"MISMATCH ({check['count']})"
            self.stdout.write(f"{check['check']:<24} {status}")
            for item in check["mismatches"][:10]:
                self.stdout.write(f"    {json.dumps(item)}")
        if not report.ok:
            raise CommandError(f"reconciliation report #{report.pk}: {report.mismatches} mismatches")
        self.stdout.write(f"reconciliation report #{report.pk}: ok")

"""``status``: the readiness report of the whole system (what ``/readyz`` answers), printed
as JSON; exit status 1 when a required part is down, so scripts and cron can act on it.
``--brief`` prints one line per part instead."""
import json

from django.core.management.base import BaseCommand

from trading.operations import readiness


class Command(BaseCommand):
    help = "Report every role's readiness (database, Redis, engine per market, worker, settlement, reconciliation, FIX)."

    def add_arguments(self, parser):
        parser.add_argument("--brief", action="store_true", help="one line per part instead of the JSON report")

    def handle(self, *args, **opts):
        report = readiness()
        if opts["brief"]:
            for name, line in report["checks"].items():
                required = "required" if report["parts"][name]["required"] else "optional"
                self.stdout.write(f"{name:<15} {required:<9} {line}")
            self.stdout.write(f"status: {report['status']}")
        else:
            self.stdout.write(json.dumps(report, indent=2))
        if report["status"] != "ok":
            raise SystemExit(1)

"""``audit_seal [--loop SECONDS]``: seal committed audit events and summarise closed
authentication-failure windows, once or every SECONDS. Celery beat runs the same work
(``audit.tasks.audit_seal_task``); this is for deployments without beat and for operators."""
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from audit.services import audit_flush_auth_failures, audit_seal


class Command(BaseCommand):
    help = "Seal committed audit events into the hash chain (once, or every --loop seconds)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, metavar="SECONDS", help="keep running, sealing every SECONDS")

    def handle(self, *args, **opts):
        while True:
            summaries = audit_flush_auth_failures()
            sealed = audit_seal()
            if sealed or summaries or not opts["loop"]:
                self.stdout.write(f"Sealed {sealed} event(s); wrote {summaries} failure summary(ies).")
            if not opts["loop"]:
                return
            close_old_connections()
            time.sleep(opts["loop"])

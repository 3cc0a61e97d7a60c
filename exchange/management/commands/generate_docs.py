"""``generate_docs``: rewrite docs/openapi.yaml and docs/errors.md from the code (``make openapi``)."""
from django.core.management.base import BaseCommand

from exchange.docs import write_all


class Command(BaseCommand):
    help = "Regenerate docs/openapi.yaml and docs/errors.md from the code."

    def handle(self, *args, **opts):
        for path in write_all():
            self.stdout.write(f"wrote {path}")

"""The base of the management commands that are long-running roles (engine, FIX gateway,
the embedded supervisor): the start-up checks of exchange/preflight.py run before ``handle``,
so a role that cannot work says why in one line instead of starting."""
from django.core.management.base import BaseCommand

from exchange import preflight


class RoleCommand(BaseCommand):
    role = "role"
    needs_database = True
    needs_redis = True

    def execute(self, *args, **options):
        preflight.run_checks(self.role, database=self.needs_database, redis=self.needs_redis)
        return super().execute(*args, **options)

"""The base of the management commands that are long-running roles (engine, FIX gateway,
the embedded supervisor): the start-up checks of exchange/preflight.py run before ``handle``,
so a role that cannot work says why in one line instead of starting."""
import ctypes
import signal

from django.core.management.base import BaseCommand

from exchange import heap, preflight

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` of a supervised child. Linux: the kernel sends the child SIGTERM when
    its supervisor dies, however it dies (kill -9 included), so no orphan keeps running —
    or keeps a listening socket the supervisor's replacement needs."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class RoleCommand(BaseCommand):
    role = "role"
    needs_database = True
    needs_redis = True

    def execute(self, *args, **options):
        preflight.run_checks(self.role, database=self.needs_database, redis=self.needs_redis)
        heap.settle()  # Django, the apps and their libraries: loaded for the role's life (exchange/heap.py)
        return super().execute(*args, **options)

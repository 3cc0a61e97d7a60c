"""Start-up checks every role runs before it serves, and the one way a role refuses to start.

A role that cannot work (a malformed setting, a database or Redis it cannot reach, a port
someone else holds) says so in **one line** on stderr, naming the setting and the fix, and
exits non-zero without a traceback, instead of starting, saying it is ready and failing
every request. Every entry point goes through here:

- ``manage.py`` (every management command, so ``run_engine``, ``run_fix_gateway``,
  ``run_embedded``, ``migrate``): settings errors, and the checks of :class:`RoleCommand`;
- daphne serving ``exchange.asgi`` (REST and WebSocket): settings errors at import, the checks
  before it listens, a port in use when it listens (``exchange.serving``);
- ``celery -A exchange worker|beat``: the checks when the worker or beat starts
  (``exchange.celery``).

Exit codes: ``EXIT_CONFIG`` (78, EX_CONFIG) for a setting that is wrong and will stay wrong
until someone changes it (a supervisor must not restart the role); ``EXIT_UNAVAILABLE`` (69,
EX_UNAVAILABLE) for a service that is not there now (database, Redis, a port in use), which
a restart with back-off may outlive. The checks only run at start: a running role that loses
its database or Redis retries on its own.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69


class StartupError(Exception):
    """A reason a role cannot start: the setting at fault, what is wrong, and the fix."""

    def __init__(self, setting: str, problem: str, fix: str, *, code: int = EXIT_CONFIG):
        super().__init__(f"{setting}: {problem}")
        self.setting, self.problem, self.fix, self.code = setting, problem, fix, code

    def line(self, role: str) -> str:
        named = self.problem if self.problem.startswith(self.setting) else f"{self.setting}: {self.problem}"
        fix = f" Fix: {self.fix}" if self.fix else ""
        return one_line(f"bourse {role}: cannot start: {named.rstrip('.')}.{fix}")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def _reason(exc: BaseException) -> str:
    """The first meaningful line of a driver's error message (psycopg's run over several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def fail(role: str, error: StartupError) -> None:
    """Write the one line and exit; never returns. ``os._exit`` where a framework would catch
    ``SystemExit`` and print a traceback (Celery signal handlers, Twisted callbacks)."""
    sys.stderr.write(error.line(role) + "\n")
    sys.stderr.flush()
    raise SystemExit(error.code)


def hard_fail(role: str, error: StartupError) -> None:
    stderr = sys.__stderr__ or sys.stderr  # the real one: Celery redirects sys.stderr into its log
    stderr.write(error.line(role) + "\n")
    stderr.flush()
    sys.stdout.flush()
    os._exit(error.code)


def from_settings_error(exc: BaseException) -> StartupError:
    """An ``ImproperlyConfigured`` raised while the settings load. Bourse's own messages start
    with the setting's name and say the fix (exchange/envconfig.py)."""
    message = one_line(str(exc))
    named = re.match(r"([A-Z][A-Z0-9_]{2,})\b", message)
    has_fix = "Fix:" in message or "see README" in message
    return StartupError(named.group(1) if named else "settings", message,
                        "" if has_fix else "correct it in the environment (README 'Production configuration')")


@contextmanager
def guard(role: str) -> Iterator[None]:
    """Turn a configuration or start-up error raised inside into the one line and an exit."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import OperationalError

    try:
        yield
    except StartupError as exc:
        fail(role, exc)
    except ImproperlyConfigured as exc:
        fail(role, from_settings_error(exc))
    except OperationalError as exc:  # the database went away (or was never there): `migrate`, `reconcile`, …
        from django.conf import settings

        fail(role, StartupError(
            "DATABASE_URL" if settings.DATABASE_URL else "BOURSE_DATA_DIR",
            f"the database failed ({_reason(exc)})",
            "check that the database in DATABASE_URL is running and reachable, then run the command again",
            code=EXIT_UNAVAILABLE,
        ))


def load_settings(role: str, *, hard: bool = False) -> None:
    """Import the settings now, so a malformed one stops the role with its one line
    (``hard``: ``os._exit``, where a framework around the caller would print a traceback)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - the import is the check
    except ImproperlyConfigured as exc:
        (hard_fail if hard else fail)(role, from_settings_error(exc))


# --- the checks ---------------------------------------------------------------------------

def check_database(*, migrated: bool = True) -> None:
    """DATABASE_URL reaches a database (and, with ``migrated``, one with every migration applied)."""
    from django.conf import settings
    from django.db import connection

    where = "DATABASE_URL" if settings.DATABASE_URL else "BOURSE_DATA_DIR"
    try:
        connection.ensure_connection()
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the operator
        raise StartupError(
            where, f"cannot connect to the database ({_reason(exc)})",
            "check host, port, database name and credentials in DATABASE_URL, and that PostgreSQL is running"
            if settings.DATABASE_URL else "check that the data folder exists and is writable",
            code=EXIT_UNAVAILABLE,
        ) from None
    if migrated:
        from django.db.migrations.executor import MigrationExecutor

        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:  # noqa: BLE001
            raise StartupError(where, f"cannot read the migration state ({_reason(exc)})",
                               "run `python manage.py migrate`", code=EXIT_UNAVAILABLE) from None
        if pending:
            raise StartupError(where, f"the database lacks {len(pending)} migration(s)",
                               "run `python manage.py migrate` (once per release) before starting the roles")
    connection.close()


def check_redis() -> None:
    """REDIS_URL (when set) is a Redis URL and answers PING."""
    from django.conf import settings

    if not settings.REDIS_URL:
        return
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    except ValueError as exc:
        raise StartupError("REDIS_URL", f"REDIS_URL is not a Redis URL ({_reason(exc)})",
                           "use redis://[:password@]host:6379/<db> (or rediss:// for TLS)") from None
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise StartupError("REDIS_URL", f"cannot reach Redis ({_reason(exc)})",
                           "check host, port, password and db number in REDIS_URL, and that Redis is running",
                           code=EXIT_UNAVAILABLE) from None
    finally:
        client.close()


def port_in_use(setting: str, host: str, port: int | str, detail: str = "address already in use") -> StartupError:
    return StartupError(setting, f"cannot listen on {host}:{port} ({detail})",
                        f"stop the process holding it (`ss -ltnp 'sport = :{port}'`) or choose another port in {setting}",
                        code=EXIT_UNAVAILABLE)


def check_port(setting: str, host: str, port: int) -> None:
    """``host:port`` can be listened on now (a free port; ``0`` always is)."""
    import socket

    if not port:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers themselves bind
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            raise port_in_use(setting, host, port, exc.strerror or str(exc)) from None


def run_checks(role: str, *, database: bool = True, redis: bool = True) -> None:
    """The checks of one role, raising the first :class:`StartupError`."""
    if database:
        check_database()
    if redis:
        check_redis()


def check_or_exit(role: str, *, hard: bool = False, **which: bool) -> None:
    """Run the checks; on a failure write the one line and exit (``hard``: ``os._exit``)."""
    from django.core.exceptions import ImproperlyConfigured

    try:
        run_checks(role, **which)
    except StartupError as exc:
        (hard_fail if hard else fail)(role, exc)
    except ImproperlyConfigured as exc:
        (hard_fail if hard else fail)(role, from_settings_error(exc))


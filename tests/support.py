"""Helpers shared by the order-lifecycle and API tests: funding, balances, the
environment a child process (engine, server) needs to use the test database, and the real
servers (daphne, ``serve_http``) serving Bourse for the live-server tests."""
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from accounts import services as account_services
from accounts.models import Balance

PYTHON = sys.executable


def fund(account, **amounts):
    for asset, amount in amounts.items():
        account_services.balance_deposit(account=account, asset=asset, amount=amount)


def balances(account) -> dict:
    return {b.asset_id: (b.available, b.locked) for b in Balance.objects.filter(account=account)}


@dataclass
class Trace:
    """The protocol messages the client sent (``F``) and received (``B``), from libpq's trace."""

    lines: list[str]

    @property
    def round_trips(self) -> int:
        """How many times the client sent and then waited for the server's answer: the
        trace is in the order things happened, so each turn from sending (``F``) to receiving
        (``B``) is one (after a statement's ``Sync`` outside a pipeline, a simple ``Query``,
        or a pipeline's ``Sync`` or ``Flush`` where it reads results)."""
        return sum(1 for before, line in zip(["B", *self.lines], self.lines, strict=False)
                   if line.startswith("B") and before.startswith("F"))

    def __str__(self) -> str:
        return "\n".join(line[:120] for line in self.lines)


@contextmanager
def pg_trace():
    """Trace what Django's PostgreSQL connection sends and receives in the block."""
    from psycopg.pq import Trace as Flags

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trace = Trace([])
    with tempfile.TemporaryFile() as out:
        pgconn.trace(out.fileno())
        pgconn.set_trace_flags(Flags.SUPPRESS_TIMESTAMPS | Flags.REGRESS_MODE)
        try:
            yield trace
        finally:
            pgconn.untrace()
            out.seek(0)
            trace.lines[:] = out.read().decode(errors="replace").splitlines()


def subprocess_env() -> dict:
    """Environment for a child process (engine, server) that must use the test database."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["BOURSE_DATA_DIR"] = str(settings.DATA_DIR)
    env["BOURSE_ALLOW_GENERATED_SECRETS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LiveServer:
    port: int
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1"

    def log(self) -> str:
        """What the server wrote to stderr so far (its JSON log lines)."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def daphne_server(**env_extra: str):
    """daphne serving ``exchange.asgi`` on a free port of 127.0.0.1 against the test database,
    with ``env_extra`` added to its environment; stopped (and its log kept) on exit. daphne
    serves the ``ws`` role (WebSocket, and HTTP beside it) and the embedded ``make run``."""
    port = free_port()
    with _live_server([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exchange.asgi:application"],
                      port, "daphne", env_extra) as server:
        yield server


@contextmanager
def web_server(processes: int = 1, **env_extra: str):
    """The ``web`` role as the Procfile runs it (``manage.py serve_http``: uvicorn processes
    with Bourse's server limits) on a free port of 127.0.0.1 against the test database."""
    port = free_port()
    with _live_server([PYTHON, "manage.py", "serve_http", "--port", str(port), "--processes", str(processes)],
                      port, "serve_http", env_extra, ready_path="/api/v1/time") as server:
        yield server


def http_server(role: str, **env_extra: str):
    """The server of ``role`` — ``web`` (serve_http, REST) or ``ws`` (daphne, WebSocket and
    HTTP beside it) — for the tests of what both must do alike."""
    return (web_server if role == "web" else daphne_server)(**env_extra)


HTTP_ROLES = ("web", "ws")


@contextmanager
def _live_server(command: list[str], port: int, name: str, env_extra: dict, ready_path: str | None = None):
    env = {**subprocess_env(), **env_extra}
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / f"{name}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        server = LiveServer(port, log_path, process)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                        if ready_path:  # answered, not only accepted (serve_http binds before its processes start)
                            probe.settimeout(5)
                            probe.sendall(f"GET {ready_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                            if not probe.recv(12).startswith(b"HTTP/1.1 200"):
                                raise OSError("not answering yet")
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start: {server.log()[-2000:]}") from None
                    time.sleep(0.1)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

"""Private PostgreSQL and Redis servers for the tests that stop, kill or restart them (the
chaos suite, the engine's reconnection, backups): each on a free port of 127.0.0.1 with its
data in a temporary folder, so the machine's own servers are never touched.

PostgreSQL comes from the Debian packages' binaries (``/usr/lib/postgresql/<version>/bin``,
or ``BOURSE_PG_BIN``); as root, ``initdb`` and ``postgres`` run as the ``postgres`` user (they
refuse to run as root). A test that cannot get one is skipped, saying why.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

# These tests bring their own servers, whatever the suite's database: run each once in CI, in
# the pass its configuration belongs to, instead of repeating it in both.
SUITE_ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
postgres_pass_only = pytest.mark.skipif(
    not SUITE_ON_POSTGRES, reason="runs in the PostgreSQL + Redis configuration only (its own servers; once is enough)"
)
embedded_pass_only = pytest.mark.skipif(SUITE_ON_POSTGRES, reason="the embedded (SQLite) mode's procedure: runs in that configuration")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def pg_bin() -> Path | None:
    configured = os.environ.get("BOURSE_PG_BIN")
    candidates = [configured] if configured else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0
    )
    for candidate in reversed(candidates):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


class PostgresInstance:
    """``initdb`` + ``pg_ctl``: start, stop, restart; ``url(name)`` for a database on it."""

    def __init__(self):
        self.bin = pg_bin()
        if self.bin is None:
            pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin or BOURSE_PG_BIN)")
        self.as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="bourse-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout[-1500:]} {done.stderr[-1500:]}"
                               f" {self.log_tail()}")
        return done

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _ctl(self, action: str, *extra: str) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, action, *extra,
                  timeout=90)

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._ctl("restart", "-m", mode)

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-tAc", statement).stdout.strip()

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class RedisInstance:
    """``redis-server`` without persistence; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("no redis-server on PATH")
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

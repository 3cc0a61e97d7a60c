"""A whole Bourse deployment on private servers, for the tests that break it: PostgreSQL and
Redis of its own (``instances``), migrated and seeded, and each role started as the README's
production table says (``ROLES``), each a process the harness can kill and start again like a
supervisor would. ``Stack.manage`` runs an operator command (``reconcile``, ``audit_verify``)
against it; ``Stack.check`` proves the invariants the chaos suite asserts after every fault.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .instances import PostgresInstance, RedisInstance, free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@dataclass
class Role:
    name: str
    argv: list[str]
    port: int | None = None  # the TCP port it serves, if any (ready once it accepts)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    starts: int = 0
    extra_env: dict = field(default_factory=dict)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Stack:
    def __init__(self, with_redis: bool = True):
        self.folder = Path(tempfile.mkdtemp(prefix="bourse-stack-"))
        self.pg = PostgresInstance()
        self.redis = RedisInstance() if with_redis else None
        self.pg.start()
        if self.redis is not None:
            self.redis.start()
        self.database_url = self.pg.create_database("bourse")
        from cryptography.fernet import Fernet

        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "BOURSE_"))},
            "DATABASE_URL": self.database_url,
            "BOURSE_DATA_DIR": str(self.folder / "data"),
            "SECRET_KEY": secrets.token_urlsafe(40),
            "BOURSE_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "BOURSE_RATE_LIMIT_ORDERS": "1000000/10",
            "BOURSE_RATE_LIMIT_KEY": "1000000/60",
            "BOURSE_RATE_LIMIT_IP": "1000000/60",
            "BOURSE_SETTLEMENT_SWEEP_S": "2",
            "PYTHONUNBUFFERED": "1",
        }
        if self.redis is not None:
            self.env["REDIS_URL"] = self.redis.url(0)
        self.roles: dict[str, Role] = {}
        self.credentials: dict = {}

    # -- operator commands ------------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 180, check: bool = True, env: dict | None = None
               ) -> subprocess.CompletedProcess:
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def python(self, code: str, timeout: float = 120, env: dict | None = None) -> str:
        """Run ``code`` in a Django process of this deployment; its stdout."""
        prelude = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'exchange.settings'); django.setup()\n"
        done = subprocess.run([PYTHON, "-c", prelude + code], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"helper process failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def migrate_and_seed(self) -> None:
        self.manage("migrate", "--noinput", timeout=600)
        self.manage("seed_demo")
        self.credentials = json.loads((self.folder / "data" / "demo-credentials.json").read_text())

    # -- roles ------------------------------------------------------------------------------
    def add_role(self, name: str, argv: list[str], port: int | None = None, **extra_env: str) -> Role:
        role = Role(name, argv, port, extra_env=extra_env)
        self.roles[name] = role
        return role

    def add_standard_roles(self) -> None:
        """The production roles (README "Production configuration"), each on its own port."""
        for name in ("engine-a", "engine-b"):
            self.add_role(name, [PYTHON, "manage.py", "run_engine"])
        self.add_role("worker", [PYTHON, "-m", "celery", "-A", "exchange", "worker", "--pool=solo",
                                 "--loglevel=INFO", "--without-gossip", "--without-mingle"])
        self.add_role("beat", [PYTHON, "-m", "celery", "-A", "exchange", "beat", "--loglevel=INFO",
                               "-s", str(self.folder / "celerybeat-schedule")])
        rest, ws, fix = free_port(), free_port(), free_port()
        self.add_role("rest", [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(rest), "exchange.asgi:application"], rest)
        self.add_role("ws", [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(ws), "exchange.asgi:application"], ws)
        self.add_role("fix", [PYTHON, "manage.py", "run_fix_gateway", "--port", str(fix)], fix)

    def start(self, name: str) -> Role:
        role = self.roles[name]
        role.starts += 1
        role.log_path = self.folder / f"{name}.{role.starts}.log"
        with open(role.log_path, "wb") as log:
            role.process = subprocess.Popen(role.argv, cwd=ROOT, env={**self.env, **role.extra_env},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return role

    def wait_serving(self, name: str, timeout: float = 60) -> None:
        role = self.roles[name]
        deadline = time.monotonic() + timeout
        while True:
            if role.port is None:
                return
            try:
                socket.create_connection(("127.0.0.1", role.port), timeout=0.5).close()
                return
            except OSError:
                if not role.alive() or time.monotonic() > deadline:
                    raise AssertionError(f"role {name} did not start serving on {role.port}:\n{self.log(name)}") from None
                time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        role = self.roles[name]
        if role.process is not None and role.process.poll() is None:
            os.kill(role.process.pid, sig)
            role.process.wait(timeout=30)

    def stop(self, name: str) -> None:
        role = self.roles[name]
        if role.process is None or role.process.poll() is not None:
            return
        role.process.terminate()
        try:
            role.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            role.process.kill()
            role.process.wait()

    def log(self, name: str, chars: int = 4000) -> str:
        role = self.roles[name]
        if role.log_path is None:
            return "(never started)"
        return role.log_path.read_text(errors="replace")[-chars:]

    def destroy(self) -> None:
        for name in list(self.roles):
            try:
                self.stop(name)
            except Exception:  # noqa: BLE001 - tear down the rest regardless
                pass
        try:
            if self.redis is not None:
                self.redis.stop()
        finally:
            self.pg.destroy()
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- the engine ---------------------------------------------------------------------------
    def engine_owner(self) -> str | None:
        """The role whose process holds a market's advisory lock (None: nobody). The engine
        names its lock connection ``bourse-engine:<pid>`` (trading/runner.py ``Ownership``)."""
        names = self.pg.sql(
            "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 17007", database="bourse",
        ).split()
        pids = {int(name.rsplit(":", 1)[1]) for name in names if name.startswith("bourse-engine:")}
        owners = [name for name, role in self.roles.items()
                  if name.startswith("engine") and role.alive() and role.process.pid in pids]
        if len(owners) > 1:
            raise AssertionError(f"two engine processes hold market locks at once: {owners}")
        return owners[0] if owners else None

    # -- invariants ---------------------------------------------------------------------------
    def check(self) -> dict:
        """The invariants (``invariants.py``) read in one process of this deployment."""
        out = self.python("from tests.chaos.invariants import main; main()", timeout=240,
                          env={"CHAOS_STATE": str(self.folder / "state.json")})
        return json.loads(out.strip().splitlines()[-1])


def _local_ports(pid: int) -> set[int]:
    """The local TCP ports of ``pid``'s sockets (from /proc), to match a PostgreSQL backend's
    client port to the process holding it."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports

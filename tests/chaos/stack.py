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
            "BOURSE_BIND": "127.0.0.1",
            "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the Procfile says `python`
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

    def add_standard_roles(self, rest_workers: int = 1) -> None:
        """The production roles, each run from its line of the Procfile (the one place the
        role commands are written), on ports of its own: two engines (owner and standby),
        the Celery worker and beat, ``rest_workers`` REST servers (``web``), the WebSocket
        server and the FIX gateway."""
        procfile = procfile_commands()
        for name in ("engine-a", "engine-b"):
            self.add_role(name, procfile["engine"])
        self.add_role("worker", procfile["worker"])
        self.add_role("beat", procfile["beat"])
        for index in range(rest_workers):
            port = free_port()
            name = "rest" if rest_workers == 1 else f"rest-{index + 1}"
            self.add_role(name, procfile["web"], port, BOURSE_WEB_PORT=str(port))
        port = free_port()
        self.add_role("ws", procfile["ws"], port, BOURSE_WS_PORT=str(port))
        port = free_port()
        self.add_role("fix", procfile["fix"], port, BOURSE_FIX_PORT=str(port))

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
        """Signal the role's whole process group (a Celery worker's pool children too), as
        the kernel's OOM killer or a lost machine would."""
        role = self.roles[name]
        if role.process is not None and role.process.poll() is None:
            os.killpg(role.process.pid, sig)
            role.process.wait(timeout=30)

    def stop(self, name: str) -> None:
        role = self.roles[name]
        if role.process is None or role.process.poll() is not None:
            return
        os.killpg(role.process.pid, signal.SIGTERM)
        try:
            role.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(role.process.pid, signal.SIGKILL)
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


def procfile_commands() -> dict[str, list[str]]:
    """Role name -> argv running its Procfile line the way honcho does (a shell expands the
    ``${VAR:-default}`` settings; ``exec`` so the role is the process the harness signals)."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            name, command = line.split(":", 1)
            command = command.strip().removeprefix("exec ")
            commands[name.strip()] = ["bash", "-c", f"exec {command}"]
    return commands

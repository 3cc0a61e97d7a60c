"""``run_embedded``: start every role of Bourse on one machine, with no other services.

A small supervisor: one child process per role (web+WebSocket server, engine, worker, beat,
FIX), output passed through, a crashed child restarted with exponential back-off (a role
that keeps crashing is given up on, saying so), and everything stopped on Ctrl-C / SIGTERM. In production
each role runs as its own process under the operator's process manager instead.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

RESTART_DELAY_S = 1.0  # first restart; doubles after each quick crash, up to the maximum
RESTART_DELAY_MAX_S = 30.0
MAX_QUICK_CRASHES = 5  # a role that crashes this many times in a row is given up on
HEALTHY_AFTER_S = 60.0  # a role that ran this long had started fine: its crash count resets


class Supervisor:
    """Runs one child process per role and restarts a dead one with exponential back-off.

    A role that keeps dying within ``healthy_after`` seconds of its start is given up on
    after ``max_crashes`` attempts, and the supervisor says so (the other roles go on; when
    every role has been given up on, ``run`` returns 1). ``write`` receives each message.
    """

    def __init__(self, roles: dict[str, list[str]], write, *, delay=RESTART_DELAY_S, max_delay=RESTART_DELAY_MAX_S,
                 max_crashes=MAX_QUICK_CRASHES, healthy_after=HEALTHY_AFTER_S):
        self.roles, self.write = roles, write
        self.delay, self.max_delay, self.max_crashes, self.healthy_after = delay, max_delay, max_crashes, healthy_after
        self.children: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.crashes: dict[str, int] = {}
        self.restart_at: dict[str, float] = {}
        self.given_up: set[str] = set()
        self.stopping = False

    def _start(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.roles[name])
        self.started[name] = time.monotonic()

    def poll(self) -> None:
        """One round: notice dead children, restart those whose back-off has passed."""
        now = time.monotonic()
        for name in list(self.roles):
            if name in self.given_up or self.stopping:
                continue
            if name in self.restart_at:
                if now >= self.restart_at[name]:
                    del self.restart_at[name]
                    self._start(name)
                continue
            code = self.children[name].poll()
            if code is None:
                continue
            ran = now - self.started[name]
            self.crashes[name] = 1 if ran >= self.healthy_after else self.crashes.get(name, 0) + 1
            if self.crashes[name] >= self.max_crashes:
                self.given_up.add(name)
                self.write(f"role {name} exited with {code}, {self.crashes[name]} times in a row within "
                           f"{self.healthy_after:g}s of starting; giving up on it (see its output above)")
                continue
            wait = min(self.max_delay, self.delay * 2 ** (self.crashes[name] - 1))
            self.restart_at[name] = now + wait
            self.write(f"role {name} exited with {code}; restarting in {wait:g}s "
                       f"(attempt {self.crashes[name]} of {self.max_crashes - 1})")

    def run(self, tick: float = 0.2) -> int:
        for name in self.roles:
            self._start(name)
        while not self.stopping:
            time.sleep(tick)
            self.poll()
            if self.given_up == set(self.roles):
                self.write("every role has been given up on; stopping")
                self.stop()
                return 1
        self.stop()
        return 0

    def stop(self) -> None:
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def roles(host: str, port: str) -> dict[str, list[str]]:
    py = sys.executable
    manage = [py, "manage.py"]
    celery = [py, "-m", "celery", "-q", "-A", "exchange"]  # -q: no text banner; its logs are JSON
    return {
        # No --proxy-headers: daphne would then believe any client's X-Forwarded-For. Proxies
        # are trusted only through BOURSE_TRUSTED_PROXIES (exchange/clientip.py).
        "web": [py, "-m", "daphne", "-b", host, "-p", port, "exchange.asgi:application"],
        "engine": [*manage, "run_engine"],
        "worker": [*celery, "worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
        "beat": [*celery, "beat", "--loglevel=INFO"],
        "fix": [*manage, "run_fix_gateway"],  # FIX 4.4 acceptor on BOURSE_FIX_HOST:BOURSE_FIX_PORT
    }


def banner(host: str, port) -> str:
    """Where an integrator starts: the guides, the API explorer, the WebSocket endpoint."""
    origin = f"http://{host}:{port}"
    return "\n".join([
        f"  Docs:         {origin}/docs/",
        f"  API explorer: {origin}/api/docs  (OpenAPI: {origin}/api/v1/openapi.yaml)",
        f"  WebSocket:    ws://{host}:{port}/ws/v1  (AsyncAPI: {origin}/docs/asyncapi)",
        f"  FIX 4.4:      {settings.BOURSE_FIX_HOST}:{settings.BOURSE_FIX_PORT}  (dictionary: {origin}/docs/fix44-bourse.xml)",
    ])


class Command(BaseCommand):
    help = "Run web, engine, worker and beat together (embedded mode); Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--only", help="comma-separated subset of roles to run")

    def handle(self, *args, **opts):
        wanted = roles(opts["host"], str(opts["port"]))
        if opts["only"]:
            names = [name.strip() for name in opts["only"].split(",")]
            wanted = {name: wanted[name] for name in names}
        # Every role counts its metrics into one directory, which /metrics adds up
        # (exchange/metrics.py); emptied at each start, as prometheus-client requires.
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(settings.DATA_DIR / "run" / "metrics")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        supervisor = Supervisor(wanted, lambda text: self.stderr.write(text))

        def stop(signum, frame):
            supervisor.stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Serving on http://{opts['host']}:{opts['port']} (roles: {', '.join(wanted)}). Ctrl-C stops.")
        self.stdout.write(banner(opts["host"], opts["port"]))
        if supervisor.run():
            raise SystemExit(1)

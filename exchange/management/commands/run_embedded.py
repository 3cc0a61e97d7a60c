"""``run_embedded``: start every role of Bourse on one machine, with no other services.

A small supervisor: the start-up checks first (exchange/preflight.py: settings, database,
Redis, the web and FIX ports free), then one child process per role (web+WebSocket server,
engine, worker, beat, FIX), output passed through. "Serving on …" is printed once the web
server answers ``/healthz``. A crashed child is restarted with exponential back-off; a role
that keeps crashing within a minute of its start, or exits with a configuration error (78),
cannot start: the supervisor says so, stops every role and exits 1. Ctrl-C / SIGTERM stops
every role (each finishes what it is doing, exchange/serving.py); the children also get
SIGTERM from the kernel if the supervisor itself dies (PR_SET_PDEATHSIG), so none is left
running. In production each role runs as its own process (Procfile, docs/deployment.md).
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from django.conf import settings

from exchange import preflight
from exchange.management.base import RoleCommand, die_with_parent

RESTART_DELAY_S = 1.0  # first restart; doubles after each quick crash, up to the maximum
RESTART_DELAY_MAX_S = 30.0
MAX_QUICK_CRASHES = 5  # a role that crashes this many times in a row is given up on
HEALTHY_AFTER_S = 60.0  # a role that ran this long had started fine: its crash count resets
STOP_GRACE_S = 15.0  # how long the roles get to finish on a stop before they are killed


class Supervisor:
    """Runs one child process per role and restarts a dead one with exponential back-off.

    A role that keeps dying within ``healthy_after`` seconds of its start is given up on
    after ``max_crashes`` attempts, at once when it exits with a configuration error
    (``preflight.EXIT_CONFIG``: a restart cannot fix it); the supervisor says so and ``run``
    stops every role and returns 1. ``write`` receives each message; ``ready`` (optional) is
    polled until it returns true, then ``on_ready`` is called once.
    """

    def __init__(self, roles: dict[str, list[str]], write, *, delay=RESTART_DELAY_S, max_delay=RESTART_DELAY_MAX_S,
                 max_crashes=MAX_QUICK_CRASHES, healthy_after=HEALTHY_AFTER_S, ready=None, on_ready=None):
        self.roles, self.write = roles, write
        self.ready, self.on_ready, self.is_ready = ready, on_ready, False
        self.delay, self.max_delay, self.max_crashes, self.healthy_after = delay, max_delay, max_crashes, healthy_after
        self.children: dict[str, subprocess.Popen] = {}
        self.started: dict[str, float] = {}
        self.crashes: dict[str, int] = {}
        self.restart_at: dict[str, float] = {}
        self.given_up: set[str] = set()
        self.stopping = False

    def _start(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.roles[name], preexec_fn=die_with_parent)  # noqa: PLW1509
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
            if code == preflight.EXIT_CONFIG and ran < self.healthy_after:
                self.given_up.add(name)
                self.write(f"role {name} cannot start: its configuration is wrong (exit {code}; the line above "
                           f"names the setting and the fix); not restarting it")
                continue
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
            if self.given_up:
                self.write(f"cannot start {', '.join(sorted(self.given_up))}; stopping every role")
                self.stop()
                return 1
            if not self.is_ready and self.ready is not None and not self.stopping and self.ready():
                self.is_ready = True
                if self.on_ready is not None:
                    self.on_ready()
        self.stop()
        return 0

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to every role, each given ``grace`` seconds to finish, then SIGKILL."""
        self.stopping = True
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + grace
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.write(f"role {name} did not stop within {grace:g}s; killing it")
                child.kill()
                child.wait()


def procfile() -> dict[str, str]:
    """The roles of the Procfile at the checkout's root: name -> shell command."""
    commands = {}
    for line in (settings.BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def _exec(command: str) -> str:
    """``command`` run by a shell that becomes it (signals reach the role itself)."""
    return command if command.startswith("exec ") else "exec " + command


def roles(host: str, port: str) -> dict[str, list[str]]:
    py = sys.executable
    manage = [py, "manage.py"]
    celery = [py, "-m", "celery", "-q", "-A", "exchange"]  # -q: no text banner; its logs are JSON
    path = os.pathsep.join([os.path.dirname(py), os.environ.get("PATH", "")])
    return {
        # The Procfile's `ws` line (daphne, the one place its command is written), on
        # HOST:PORT: one server for REST and WebSocket alike, which the `web` line's uvicorn
        # processes are not (they serve REST only). No --proxy-headers there: daphne would
        # then believe any client's X-Forwarded-For; proxies are trusted only through
        # BOURSE_TRUSTED_PROXIES (exchange/clientip.py).
        "web": ["/usr/bin/env", f"BOURSE_BIND={host}", f"BOURSE_WS_PORT={port}", f"PATH={path}",
                "/bin/sh", "-c", _exec(procfile()["ws"])],
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


def answers(url: str) -> bool:
    """True once ``url`` answers 200 (the web role is up)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http URL
            return response.status == 200
    except OSError:
        return False


class Command(RoleCommand):
    role = "run"
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
        host, port = opts["host"], str(opts["port"])
        if "web" in wanted:
            preflight.check_port("PORT", host, int(port))
        if "fix" in wanted:
            preflight.check_port("BOURSE_FIX_PORT", settings.BOURSE_FIX_HOST, settings.BOURSE_FIX_PORT)

        def serving():
            self.stdout.write(f"Serving on http://{host}:{port} (roles: {', '.join(wanted)}). Ctrl-C stops.")
            self.stdout.write(banner(host, port))
            self.stdout.flush()

        url_host = f"[{host}]" if ":" in host else host
        supervisor = Supervisor(
            wanted, lambda text: self.stderr.write(text),
            ready=(lambda: answers(f"http://{url_host}:{port}/healthz")) if "web" in wanted else (lambda: True),
            on_ready=serving,
        )

        def stop(signum, frame):
            supervisor.stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Starting {', '.join(wanted)} …")
        self.stdout.flush()
        if supervisor.run():
            raise SystemExit(1)

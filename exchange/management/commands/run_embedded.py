"""``run_embedded``: start every role of Bourse on one machine, with no other services.

A small supervisor: one child process per role (web+WebSocket server, and the roles that
later parts of the system add to ``ROLES``), output passed through, a crashed child
restarted after a short pause, and everything stopped on Ctrl-C / SIGTERM. In production
each role runs as its own process under the operator's process manager instead.
"""
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

RESTART_DELAY_S = 1.0


def roles(host: str, port: str) -> dict[str, list[str]]:
    py = sys.executable
    manage = [py, "manage.py"]
    celery = [py, "-m", "celery", "-A", "exchange"]
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
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, argv in wanted.items():
            children[name] = subprocess.Popen(argv)
        self.stdout.write(f"Serving on http://{opts['host']}:{opts['port']} (roles: {', '.join(wanted)}). Ctrl-C stops.")
        self.stdout.write(banner(opts["host"], opts["port"]))
        while not stopping:
            time.sleep(0.2)
            for name, child in list(children.items()):
                code = child.poll()
                if code is not None and not stopping:
                    self.stderr.write(f"role {name} exited with {code}; restarting in {RESTART_DELAY_S}s")
                    time.sleep(RESTART_DELAY_S)
                    children[name] = subprocess.Popen(wanted[name])
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()

"""``python manage.py serve_http [--host H] [--port P] [--processes N]``: the REST server.

N uvicorn processes serve ``exchange.asgi:application`` on one port: this command binds N
listening sockets to the same address with ``SO_REUSEPORT`` (the kernel spreads new
connections over them by a hash of the connection, so keep-alive clients land evenly, which
a single shared socket does not promise) and gives one to each process
(``python -m exchange.webserver --fd N``). Every process carries Bourse's server limits
(``exchange.webserver``: body size refused before buffering, slow clients cut with 408, the
start-up checks, the drain on SIGTERM), so nothing about the protections of one process
changes with N. A process that dies is started again after a back-off (1 s, doubling to
30 s); five quick crashes in a row, or one configuration error (exit 78), stop the command
instead of restarting forever. SIGTERM or SIGINT drains and stops them all, and a serve_http
killed outright takes its processes with it (PR_SET_PDEATHSIG), so its replacement finds the
port free. Python runs one thread at a time per process, so N is about the cores given to
REST.
"""
from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings

from exchange import preflight
from exchange.management.base import RoleCommand, die_with_parent

log = logging.getLogger("bourse.serve_http")
PORT_WAIT_S = 5.0  # how long a port still held by a predecessor's exiting processes may take to free


def refuse_port_in_use(host: str, port: int) -> None:
    """``SO_REUSEPORT`` would let these sockets share a port another server of the same user
    already listens on; a bind without it first says whether the port is free (one line, exit
    69). The probe sets ``SO_REUSEADDR`` as the servers do, so connections of a previous run
    still in TIME_WAIT do not count as the port in use; a listener still there is waited for
    up to ``PORT_WAIT_S`` (the processes of a serve_http just killed are stopping)."""
    deadline = time.monotonic() + PORT_WAIT_S
    while True:
        try:
            preflight.check_port("BOURSE_WEB_PORT (--port)", host, port)
            return
        except preflight.StartupError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


RESTART_DELAY_S = 1.0  # a dead process's first restart; doubles after each quick crash
RESTART_DELAY_MAX_S = 30.0
MAX_QUICK_CRASHES = 5  # in a row, each within HEALTHY_AFTER_S of its start: give up
HEALTHY_AFTER_S = 60.0


def server_command(fd: int) -> list[str]:
    return [sys.executable, "-m", "exchange.webserver", "--fd", str(fd)]


class Command(RoleCommand):
    role = "web"
    help = "Serve HTTP (REST) with N uvicorn processes sharing one port (SO_REUSEPORT)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--processes", type=int, default=2, help="server processes (about the cores for REST)")

    def handle(self, *args, host, port, processes, **options):
        if port:
            refuse_port_in_use(host, port)
        try:
            sockets = [reuseport_socket(host, port)]
            port = sockets[0].getsockname()[1]  # --port 0: a free port, then the same one for all
            sockets += [reuseport_socket(host, port) for _ in range(max(1, processes) - 1)]
        except OSError as exc:
            raise preflight.port_in_use("BOURSE_WEB_PORT (--port)", host, port, exc.strerror or str(exc)) from None
        children: dict[int, subprocess.Popen] = {}
        stopping, failed = False, 0

        def start(sock: socket.socket) -> subprocess.Popen:
            # die_with_parent: a serve_http killed outright takes its processes with it, so
            # none is left holding the port its replacement binds
            return subprocess.Popen(
                server_command(sock.fileno()), pass_fds=(sock.fileno(),), preexec_fn=die_with_parent,  # noqa: PLW1509
            )

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for sock in sockets:
            children[sock.fileno()] = start(sock)
        log.info("serving HTTP on %s:%s with %s uvicorn processes", host, port, len(sockets))
        by_fd = {sock.fileno(): sock for sock in sockets}
        started = {fd: time.monotonic() for fd in children}
        crashes = dict.fromkeys(children, 0)  # quick crashes in a row, per socket
        due: dict[int, float] = {}  # socket -> when its process is started again (back-off)
        while not stopping:
            time.sleep(0.5)
            now = time.monotonic()
            for fd, child in list(children.items()):
                if stopping:
                    break
                if fd in due:
                    if now >= due[fd]:
                        del due[fd]
                        children[fd], started[fd] = start(by_fd[fd]), now
                    continue
                code = child.poll()
                if code is None:
                    continue
                if code == preflight.EXIT_CONFIG:
                    # its one line said which setting; a restart cannot fix it
                    log.error("server process (pid %s) cannot start (exit %s); stopping", child.pid, code)
                    stopping, failed = True, preflight.EXIT_CONFIG
                    break
                crashes[fd] = crashes[fd] + 1 if now - started[fd] < HEALTHY_AFTER_S else 1
                if crashes[fd] >= MAX_QUICK_CRASHES:
                    log.error("server process exited %s times in a row within %.0f s of starting (last exit %s); giving up and stopping",
                              crashes[fd], HEALTHY_AFTER_S, code)
                    stopping, failed = True, 1
                    break
                delay = min(RESTART_DELAY_MAX_S, RESTART_DELAY_S * 2 ** (crashes[fd] - 1))
                log.warning("server process (pid %s) exited with %s; starting another in %.0f s", child.pid, code, delay)
                due[fd] = now + delay
        for fd, child in children.items():
            if fd not in due:  # one waiting for its restart has exited already
                child.terminate()
        for fd, child in children.items():
            try:  # each drains its requests in flight for up to the grace, then exits 0
                code = child.wait(settings.BOURSE_SHUTDOWN_GRACE_S + 5)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            # -SIGTERM: stopped while still starting, before its drain was installed (nothing in flight)
            if code not in (0, -signal.SIGTERM) and fd not in due and not failed:
                log.error("server process (pid %s) did not drain cleanly (exit %s)", child.pid, code)
                failed = 1
        if failed:
            raise SystemExit(failed)

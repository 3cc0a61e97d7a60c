"""``manage.py serve_http``, the documented REST command: N uvicorn processes on one port
(SO_REUSEPORT), each serving Bourse with its server limits, a dead one replaced, all stopped
by SIGTERM; and the request-thread pool under them (``exchange/httppool.py``) keeps database
connections across requests."""
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from tests.support import PYTHON, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            pass
    return found


def _logged(process: subprocess.Popen, pattern: str) -> re.Match:
    """The first log line (JSON, on stderr) of ``process`` matching ``pattern``; the rest of
    its output (its processes' too) is drained, so a full pipe never blocks the server."""
    for line in process.stderr:
        found = re.search(pattern, line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return found
    raise AssertionError(f"no log line matched {pattern!r}")


@pytest.fixture
def served(market):
    process = subprocess.Popen([PYTHON, "manage.py", "serve_http", "--port", "0", "--processes", "2"],
                               env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = int(_logged(process, r":(\d+) with 2 uvicorn processes").group(1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=2).status_code == 200 and \
                        len(_children(process.pid)) == 2:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(20)


def test_two_processes_share_the_port_with_the_server_limits(served):
    process, port = served
    assert len(_children(process.pid)) == 2
    # connections land on both processes: each new connection is answered
    for _ in range(8):
        with requests.Session() as session:
            assert session.get(f"http://127.0.0.1:{port}/api/v1/markets", timeout=30).status_code == 200
    # the body limit of exchange/webserver.py, answered before the body is read
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000000\r\n\r\n")
        head = sock.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413") and "application/problem+json" in head


def test_a_dead_process_is_replaced_and_sigterm_stops_all(served):
    process, port = served
    first, second = _children(process.pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(_children(process.pid)) < 2 or first in _children(process.pid)):
        time.sleep(0.2)
    replaced = _children(process.pid)
    assert len(replaced) == 2 and first not in replaced and second in replaced
    assert requests.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=30).status_code == 200
    process.terminate()
    assert process.wait(20) == 0
    for pid in replaced:  # gone, or a zombie its parent never reaped
        assert _state(pid) in ("Z", "gone")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_port_in_use_is_refused(served):
    _, port = served  # a second server on the same port would silently share it through SO_REUSEPORT
    refused = subprocess.run([PYTHON, "manage.py", "serve_http", "--port", str(port), "--processes", "1"],
                             env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and f"127.0.0.1:{port}" in refused.stderr


def test_killed_outright_it_takes_its_processes_along_and_the_port_is_free_again(served):
    """A supervisor (honcho, systemd) restarting serve_http after kill -9 must find the port
    free: orphaned processes would keep listening on it and the replacement refuse to start."""
    process, port = served
    servers = _children(process.pid)
    assert len(servers) == 2
    client = requests.Session()  # a keep-alive connection the dying process closes: TIME_WAIT on its port
    assert client.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=30).status_code == 200
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_state(pid) not in ("Z", "gone") for pid in servers):
        time.sleep(0.2)
    assert [_state(pid) for pid in servers if _state(pid) not in ("Z", "gone")] == []
    client.close()
    # a replacement on the same port starts and serves (connections of the old one in
    # TIME_WAIT do not make the port "in use")
    again = subprocess.Popen([PYTHON, "manage.py", "serve_http", "--port", str(port), "--processes", "1"],
                             env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _logged(again, rf":{port} with 1 uvicorn processes")
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status != 200:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/api/v1/time", timeout=2).status_code
            except requests.RequestException:
                time.sleep(0.2)
        assert status == 200
    finally:
        again.terminate()
        again.wait(20)


def test_a_process_that_keeps_crashing_is_given_up_on(market, tmp_path):
    """Restarts back off and stop after five quick crashes in a row instead of looping forever."""
    env = subprocess_env()
    # every process this serve_http starts dies at once
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if '--fd' in sys.argv:\n"
        "    os._exit(3)\n"
    )
    started = time.monotonic()
    result = subprocess.run([PYTHON, "manage.py", "serve_http", "--port", "0", "--processes", "1"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "giving up" in result.stderr and result.stderr.count("starting another in") == 4
    assert time.monotonic() - started >= 1 + 2 + 4 + 8  # the back-off between the restarts

"""Operations against the real roles: ``run_embedded`` (web, worker, beat, FIX) plus an engine
process, with the shared multiprocess metrics directory. /readyz answers 200 once every role
beats and 503 naming the engine when it is killed; /metrics adds up the processes; every line
every role wrote is JSON with a UTC timestamp."""
import json
import signal
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.error import HTTPError

import pytest

from tests.factories import MarketFactory
from tests.support import PYTHON, free_port, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def get(url: str, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except HTTPError as error:
        return error.code, error.read()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {str(last)[:3000]}")


@contextmanager
def stack(tmp: Path):
    """``run_embedded --only web,worker,beat,fix`` and a separate ``run_engine``, each with its
    output in a file; stopped on exit."""
    port, fix_port = free_port(), free_port()
    env = {**subprocess_env(), "BOURSE_FIX_PORT": str(fix_port), "BOURSE_HEARTBEAT_S": "0.5",
           "BOURSE_HEARTBEAT_STALE_S": "3", "BOURSE_WORKER_HEARTBEAT_S": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"), "BOURSE_METRICS_ALLOW": "127.0.0.1/32"}
    outputs = {name: tmp / f"{name}.log" for name in ("embedded", "engine")}
    with open(outputs["embedded"], "wb") as embedded_out:
        embedded = subprocess.Popen([PYTHON, "manage.py", "run_embedded", "--port", str(port), "--only", "web,worker,beat,fix"],
                                    env=env, stdout=embedded_out, stderr=subprocess.STDOUT)
    # The engine starts after run_embedded emptied the metrics directory (then it says "Serving on").
    wait_for(lambda: "Serving on" in outputs["embedded"].read_text(errors="replace") or embedded.poll() is not None,
             60, "run_embedded to start")
    assert embedded.poll() is None, outputs["embedded"].read_text(errors="replace")[-3000:]
    with open(outputs["engine"], "wb") as engine_out:
        engine = subprocess.Popen([PYTHON, "manage.py", "run_engine"], env=env, stdout=engine_out, stderr=subprocess.STDOUT)
    try:
        yield port, engine, outputs
    finally:
        for process in (engine, embedded):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (engine, embedded):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def assert_json_lines(text: str, role: str, *, skip_prefixes=()) -> list[dict]:
    lines = []
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith(skip_prefixes):
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise AssertionError(f"{role} wrote a line that is not JSON: {raw[:300]!r}") from None
        stamp = datetime.fromisoformat(line["time"])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0, line["time"]
        assert line["time"].endswith("+00:00") and {"level", "logger", "message", "request_id"} <= set(line), line
        lines.append(line)
    assert lines, f"{role} wrote nothing"
    return lines


# The supervisor's own lines for a person at the terminal (run_embedded's banner and restart
# notices) are not a role's log; every role's output it passes through must be JSON.
SUPERVISOR = ("Starting ", "Serving on ", "  Docs:", "  API explorer:", "  WebSocket:", "  FIX 4.4:", "role ", "every role")


def test_readiness_metrics_and_logs_of_the_real_roles(tmp_path):
    market = MarketFactory()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with stack(tmp) as (port, engine, outputs):
            base = f"http://127.0.0.1:{port}"

            def ready():
                status, body = get(f"{base}/readyz")
                return (status, json.loads(body)) if status == 200 else None

            status, report = wait_for(ready, 120, "every role to be ready")
            assert report["down"] == [] and report["mode"] in ("embedded", "production")
            assert report["parts"]["engine"]["markets"][market.symbol]["owner"].endswith(f":{engine.pid}")
            assert report["parts"]["fix"]["instances"] and report["parts"]["worker"]["instances"]

            get(f"{base}/api/v1/time", **{"X-Request-ID": "live-req-1"})
            status, body = get(f"{base}/metrics")
            assert status == 200
            text = body.decode()
            assert 'bourse_http_requests_total{method="GET",route="api/v1/time",status="200"}' in text
            assert f'bourse_engine_market_up{{market="{market.symbol}"}} 1.0' in text
            assert 'bourse_part_up{part="worker",required="true"} 1.0' in text
            # The multiprocess registry: files of several processes (web, engine, FIX gateway ...).
            assert len({p.name.rsplit("_", 1)[1] for p in (tmp / "metrics").glob("*.db")}) >= 2

            # The engine dies without a word: readiness names it within the stale bound.
            engine.kill()
            engine.wait()

            def engine_down():
                status, body = get(f"{base}/readyz")
                return (status, json.loads(body)) if status == 503 else None

            status, report = wait_for(engine_down, 30, "readiness to see the engine gone")
            assert report["down"] == ["engine"]
            assert f"{market.symbol}: no live engine owns this market" in report["checks"]["engine"]
            status, body = get(f"{base}/metrics")
            assert f'bourse_engine_market_up{{market="{market.symbol}"}} 0.0' in body.decode()
            assert 'bourse_ready 0.0' in body.decode()
        embedded_lines = assert_json_lines(outputs["embedded"].read_text(), "run_embedded's roles", skip_prefixes=SUPERVISOR)
        engine_lines = assert_json_lines(outputs["engine"].read_text(), "the engine")
    loggers = {line["logger"] for line in embedded_lines}
    assert {"daphne.server", "celery.apps.worker", "celery.beat", "bourse.fix", "bourse.access"} <= loggers, loggers
    assert any(line["logger"] == "bourse.engine" and "owns market" in line["message"] for line in engine_lines)
    access = [line for line in embedded_lines if line["logger"] == "bourse.access" and line.get("request_id") == "live-req-1"]
    assert access and access[0]["status"] == 200 and access[0]["route"] == "api/v1/time" and access[0]["duration_ms"] >= 0
    assert any(line["message"].startswith("FIX gateway listening on 127.0.0.1:") for line in embedded_lines)


def test_the_web_role_writes_only_json_lines(tmp_path):
    """serve_http and its uvicorn processes: start, access, a refused body, the drain — each
    line JSON with the request id, none of uvicorn's own text lines."""
    import socket

    from tests.support import web_server

    with web_server() as server:
        status, _ = get(f"{server.http}/api/v1/time", **{"X-Request-ID": "live-web-1"})
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 413")
        server.process.terminate()  # its drain is logged too
        assert server.process.wait(30) == 0
        lines = assert_json_lines(server.log(), "serve_http")
    assert status == 200
    access = [line for line in lines if line["logger"] == "bourse.access" and line.get("request_id") == "live-web-1"]
    assert access and access[0]["status"] == 200 and access[0]["route"] == "api/v1/time"
    messages = {line["message"] for line in lines}
    assert {"serving HTTP", "request body over the limit refused before buffering", "drained"} <= messages, messages


def test_websocket_access_lines_are_json(tmp_path):
    from websockets.sync.client import connect

    from tests.support import daphne_server

    with daphne_server(BOURSE_METRICS_ALLOW="127.0.0.1/32") as server:
        with connect(server.ws, open_timeout=10) as ws:
            ws.send(json.dumps({"op": "ping", "id": 1}))
            assert json.loads(ws.recv())["type"] == "pong"
        status, body = get(f"{server.http}/metrics")
        time.sleep(0.5)
        lines = assert_json_lines(server.log(), "daphne")
    events = [line.get("event") for line in lines if line["logger"] == "bourse.access"]
    assert "WSCONNECT" in events and "WSDISCONNECT" in events
    assert status == 200 and b"bourse_ws_connections" in body

"""Graceful shutdown (issue 17 item 4): SIGTERM to each role, started as the real process,
finishes what is in flight within a bound and exits 0 — serve_http (uvicorn) and daphne answer
the request in flight, daphne closes WebSockets with 1001, the engine ends its batch, the FIX gateway sends Logout, the
worker finishes its task, beat stops; ``run_embedded`` (``make run``) stops every child,
even when it is itself killed."""
import os
import signal
import subprocess
import threading
import time

import pytest
from bourse import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from exchange.celery import app as celery_app
from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.fix.support import Processes, RawClient
from tests.support import PYTHON, free_port, fund, subprocess_env
from trading.models import Order

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BOUND_S = 20  # every role must be gone this long after SIGTERM (the grace is 10 s)


def wait_exit(process: subprocess.Popen, bound: float = BOUND_S) -> tuple[int, float]:
    started = time.monotonic()
    code = process.wait(timeout=bound)
    return code, time.monotonic() - started


def wait_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited while starting"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listening on {port}")


def place_in_flight(client: Client, key) -> tuple[threading.Thread, dict]:
    """Place an order in a thread and return once the request is in the view (its order row
    written): with no engine running, its answer waits ``BOURSE_ENGINE_WAIT_S`` for a verdict.
    The dict gets ``order`` (the answer) or ``error``."""
    answer: dict = {}

    def place():
        try:
            answer["order"] = client.place_order("BTC-USD", "buy", "limit", quantity="0.1", price="100.00")
        except Exception as exc:  # noqa: BLE001 - the caller's assertion shows it
            answer["error"] = exc

    placing = threading.Thread(target=place)
    placing.start()
    deadline = time.monotonic() + 30
    while not Order.objects.filter(account=key.account).exists():
        assert time.monotonic() < deadline, "the order never arrived"
        time.sleep(0.05)
    return placing, answer


@pytest.fixture
def market():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    return MarketFactory(base=btc, quote=usd)


@pytest.fixture
def key(market):
    key = ApiKeyFactory()
    fund(key.account, USD="100000", BTC="100")
    return key


def test_daphne_finishes_the_request_in_flight_and_closes_websockets_with_1001(key):
    port = free_port()
    # No engine runs: an order waits BOURSE_ENGINE_WAIT_S for its verdict, then is answered 202.
    env = {**subprocess_env(), "BOURSE_ENGINE_WAIT_S": "3"}
    process = subprocess.Popen([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exchange.asgi:application"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, process)
        socket_closed: dict = {}
        websocket = connect(f"ws://127.0.0.1:{port}/ws/v1", open_timeout=10).__enter__()

        def read_until_closed():
            try:
                while True:
                    websocket.recv(timeout=BOUND_S)
            except ConnectionClosed as closed:
                socket_closed["code"] = closed.rcvd.code if closed.rcvd else None
                socket_closed["at"] = time.monotonic()

        reader = threading.Thread(target=read_until_closed)
        reader.start()
        placing, answer = place_in_flight(Client(f"http://127.0.0.1:{port}", key.key_id, secret=key.secret,
                                                 timeout=30), key)
        process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        code, took = wait_exit(process)
        placing.join(10)
        reader.join(10)
        log = process.stderr.read()
        assert code == 0, log[-3000:]
        assert took < BOUND_S
        assert "error" not in answer, f"the request in flight was cut: {answer.get('error')!r}"
        assert answer["order"].status == "pending"  # answered after the wait, not dropped
        assert socket_closed["code"] == 1001  # going away: reconnect elsewhere
        assert socket_closed["at"] - terminated < 5
        assert "Traceback" not in log, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_http_finishes_the_request_in_flight_closes_idle_connections_and_exits_0(key):
    """The ``web`` role (uvicorn processes under serve_http): SIGTERM stops accepting, closes
    an idle keep-alive connection at once, answers the placement waiting for its verdict, and
    every process exits 0."""
    import socket

    port = free_port()
    env = {**subprocess_env(), "BOURSE_ENGINE_WAIT_S": "3"}  # no engine: answered 202 after the wait
    process = subprocess.Popen([PYTHON, "manage.py", "serve_http", "--port", str(port), "--processes", "1"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log_lines: list[str] = []
    threading.Thread(target=lambda: log_lines.extend(process.stderr), daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{port}", key.key_id, secret=key.secret, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.time()
                break
            except Exception:  # noqa: BLE001 - not answering yet
                assert process.poll() is None and time.monotonic() < deadline, "".join(log_lines)[-3000:]
                time.sleep(0.2)
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        idle_stream = idle.makefile("rb")
        assert idle_stream.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := idle_stream.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        idle_stream.read(length)  # the whole answer read: what comes next is the close
        placing, answer = place_in_flight(client, key)
        process.send_signal(signal.SIGTERM)
        terminated = time.monotonic()
        assert idle_stream.read(1) == b""  # the idle keep-alive connection: closed at once, not at the grace
        assert time.monotonic() - terminated < 2.5  # before the order's 3 s wait is over
        idle.close()
        code, took = wait_exit(process)
        placing.join(10)
        log = "".join(log_lines)
        assert code == 0, log[-3000:]
        assert took < BOUND_S
        assert "error" not in answer, f"the request in flight was cut: {answer.get('error')!r}"
        assert answer["order"].status == "pending"  # answered after the wait, not dropped
        assert "drained" in log and "Traceback" not in log, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_drain_waits_for_each_application_to_return_not_for_its_response_to_be_sent():
    """daphne marks an HTTP connection ended with its response's last byte, while the
    application is still finishing; cancelled there, it left a task asyncio logged as a
    traceback (seen in CI on the test above). A WebSocket counts until its client closes."""
    import asyncio

    from exchange.serving import in_flight

    class Socket:  # stands for daphne's WebSocketProtocol
        pass

    loop = asyncio.new_event_loop()
    try:
        finishing, consumer = loop.create_future(), loop.create_future()
        answered, socket = object(), Socket()
        connections = {answered: {"application_instance": finishing, "disconnected": time.time()},
                       socket: {"application_instance": consumer}}
        assert in_flight(connections, Socket) == 2
        finishing.set_result(None)
        assert in_flight(connections, Socket) == 1  # the WebSocket's consumer still runs
        consumer.set_result(None)
        assert in_flight(connections, Socket) == 1  # its client has not closed yet
        connections[socket]["disconnected"] = time.time()
        assert in_flight(connections, Socket) == 0
    finally:
        loop.close()


def test_the_engine_finishes_its_batch_and_exits_0(key, market):
    client_orders = []
    env = subprocess_env()
    process = subprocess.Popen([PYTHON, "manage.py", "run_engine"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        from trading.services import order_submit

        for n in range(40):
            result = order_submit(account=key.account, market=market.symbol, side="sell", type="limit",
                                  quantity="0.01", price=f"{200 + n}.00", client_order_id=f"g{n}")
            client_orders.append(result.order.pk)
        deadline = time.monotonic() + 60
        while not Order.objects.filter(pk__in=client_orders).exclude(status="pending").exists():
            assert time.monotonic() < deadline and process.poll() is None, "the engine took nothing"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        code, took = wait_exit(process)
        output = process.stdout.read()
        assert code == 0, output[-3000:]
        assert "Traceback" not in output
        statuses = set(Order.objects.filter(pk__in=client_orders).values_list("status", flat=True))
        assert statuses <= {"pending", "open"}  # each order fully processed or not yet taken
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_fix_gateway_sends_logout_and_exits_0(key):
    processes = Processes()
    try:
        raw = RawClient(processes.port, key)
        raw.logon()
        raw.expect("A")
        processes.gateway.send_signal(signal.SIGTERM)
        logout = raw.expect("5", timeout=10)
        assert "shutting down" in (logout.get(58) or "")
        code, took = wait_exit(processes.gateway)
        assert code == 0, processes.output()[-3000:]
        raw.close()
    finally:
        processes.stop()


def _celery(role: str, log_path) -> subprocess.Popen:
    env = {**subprocess_env()}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    extra = ["--pool=solo", "--without-gossip", "--without-mingle"] if role == "worker" else []
    return subprocess.Popen([PYTHON, "-m", "celery", "-A", "exchange", role, "--loglevel=INFO", *extra],
                            env=env, stdout=open(log_path, "w"),  # noqa: SIM115 - the child owns it
                            stderr=subprocess.STDOUT)


def test_the_worker_finishes_its_task_and_exits_0(tmp_path, market):
    log_path = tmp_path / "worker.log"
    process = _celery("worker", log_path)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.1)
        celery_app.send_task("trading.reconcile")  # a real task of the worker, through the broker
        while "Task trading.reconcile" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        code, took = wait_exit(process)
        log = log_path.read_text()
        assert code == 0, log[-3000:]
        assert "succeeded" in log.split("Task trading.reconcile", 1)[1], log[-3000:]  # finished, not cut
        assert "Traceback" not in log, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_beat_exits_0(tmp_path):
    log_path = tmp_path / "beat.log"
    process = _celery("beat", log_path)
    try:
        deadline = time.monotonic() + 60
        # The first task sent: the scheduler has opened its schedule ("beat: Starting" comes
        # before that, and a SIGTERM in between interrupts celery's own start-up).
        while "Scheduler: Sending due task" not in log_path.read_text():
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        code, _ = wait_exit(process)
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_beats_signal_handler_stops_the_loop_and_leaves_the_schedule_to_it():
    """Celery's handler closed the schedule's shelf inside the signal handler, wherever the
    main thread was; a tick that went on then read the closed shelf and beat exited 1. Ours
    sets the loop's stop flag and raises SystemExit; the loop closes the schedule once."""
    from celery import platforms
    from celery.beat import Service

    from exchange import celery as bourse_celery

    service = Service(celery_app)
    closed = []
    service.sync = lambda: closed.append(True)  # what Celery's handler called
    saved = {name: signal.getsignal(getattr(signal, name)) for name in ("SIGTERM", "SIGINT")}
    try:
        bourse_celery._beat_stops_between_ticks(sender=service)
        handler = signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit):
            handler(signal.SIGTERM, None)
        assert service._is_shutdown.is_set()  # the loop ends before its next tick
        assert closed == []  # the shelf is left to the loop's own way out
    finally:
        platforms.signals.update(**saved)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(word) for word in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by a dead parent's reaper) counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_run_embedded_stops_every_child(how):
    env = {**subprocess_env(), "BOURSE_FIX_PORT": str(free_port())}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    process = subprocess.Popen([PYTHON, "manage.py", "run_embedded", "--port", str(free_port()),
                                "--only", "web,engine,fix"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (process.stdout.readline() or "").startswith("Serving on"):
            assert time.monotonic() < deadline and process.poll() is None, "run_embedded did not start"
        children = _children(process.pid)
        assert len(children) == 3
        process.send_signal(how)
        code, _ = wait_exit(process)
        assert code == (-signal.SIGKILL if how == signal.SIGKILL else 0)
        deadline = time.monotonic() + BOUND_S
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children), "a role was left running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_honcho_stops_every_procfile_role_with_exit_0(tmp_path):
    """``make run-prod``'s way: honcho runs the Procfile; SIGTERM to it reaches each role (each
    line execs its role) and every role reports exit 0."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**subprocess_env(), "BOURSE_WEB_PORT": str(free_port()), "BOURSE_WS_PORT": str(free_port()),
           "BOURSE_FIX_PORT": str(free_port()), "BOURSE_SHUTDOWN_GRACE_S": "4",
           "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "honcho.log"
    names = ["web", "ws", "engine", "worker", "beat", "fix"]
    process = subprocess.Popen([str(Path(PYTHON).parent / "honcho"), "-f", str(root / "Procfile"), "-d", str(root),
                                "start", *names], env=env, stdout=open(log_path, "w"),  # noqa: SIM115
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        started = ("FIX gateway listening", " ready.", "beat: Starting", "Listening on TCP address")
        while not all(text in log_path.read_text() for text in started):  # every role past its start
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        wait_exit(process)
        log = log_path.read_text()
        for name in names:
            assert f"{name}.1 stopped (rc=0)" in log, log[-3000:]
        assert "SIGKILL" not in log
        assert "exited with 'signal 15" not in log  # no task cut: the worker's pool is itself
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""Bodies are refused before they are buffered, and slow clients cannot hold the server:
against both real servers at the socket level — the ``web`` role (``manage.py serve_http``,
uvicorn with ``exchange.webserver``) and the ``ws`` role (daphne with
``exchange.serverlimits``), which serves HTTP too."""
import json
import socket
import time

import pytest
import requests

from tests.support import HTTP_ROLES, http_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=HTTP_ROLES)
def serve(request):
    """Starts the server under test: ``serve(**env)`` is a context manager yielding its
    (host, port)."""
    from contextlib import contextmanager

    @contextmanager
    def start(**env):
        with http_server(request.param, **env) as server:
            yield "127.0.0.1", server.port

    return start


def _read_response(sock, timeout=5.0) -> tuple[int, dict, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _closed(sock, timeout=5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_a_declared_oversize_body_is_refused_before_any_of_it_is_sent(serve, market):
    with serve() as (host, port), socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1610612736\r\n\r\n")  # 1.5 GiB announced, none sent
        status, headers, body = _read_response(sock)
        assert status == 413 and headers["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "payload_too_large"
        assert _closed(sock)


def test_a_chunked_body_is_cut_at_the_limit(serve, market):
    with serve() as (host, port):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 16384
            sent = 0
            try:
                for _ in range(5):  # 80 KiB, past the 64 KiB limit, and no terminating chunk
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            status, _, body = _read_response(sock)
            assert status == 413 and json.loads(body)["code"] == "payload_too_large"
            assert _closed(sock)
        # the server goes on
        assert requests.get(f"http://{host}:{port}/api/v1/time", timeout=5).status_code == 200


def test_pipelined_requests_are_answered_in_order_within_the_deadline(serve, market, monkeypatch):
    """Requests sent back to back on one connection before any answer: each answered, in
    order; the deadline (which counts requests against responses) cuts none of them."""
    monkeypatch.setenv("BOURSE_HTTP_REQUEST_TIMEOUT_S", "2")
    with serve() as (host, port), socket.create_connection((host, port), timeout=5) as sock:
        ids = [f"pipe-{n}" for n in range(3)]
        sock.sendall(b"".join(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: %s\r\n\r\n"
                              % rid.encode() for rid in ids))
        answered, stream = [], sock.makefile("rb")  # buffered: one read may hold several answers
        for _ in ids:
            status = int(stream.readline().split()[1])
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.lower()] = value.strip()
            stream.read(int(headers["content-length"]))
            answered.append((status, headers["x-request-id"]))
        assert answered == [(200, rid) for rid in ids]
        time.sleep(1.2)  # more than half the deadline later, the connection still serves
        sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200


HEAD = b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n"
BAD_HEADS = {
    # a head that never ends, within the deadline: cut at 16 KiB, not buffered
    "head over 16 KiB": HEAD + b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 1024) for n in range(17)),
    "one header line over 16 KiB": HEAD + b"X-Big: " + b"v" * 20000 + b"\r\n\r\n",
    "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",  # a TLS hello, say
    "malformed request line": b"GET\r\nHost: 127.0.0.1\r\n\r\n",
    "header name with a space": HEAD + b"Bad Name: 1\r\n\r\n",
    "header value with a NUL byte": HEAD + b"X-Nul: a\x00b\r\n\r\n",
    "path not ASCII": b"GET /api/v1/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "query string not ASCII": b"GET /api/v1/time?x=\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "malformed chunk": b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "two lengths": b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
}


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_bytes_the_server_cannot_take_get_the_apis_problem_body(serve, market, case):
    """Whatever a server refuses before the application — a head past 16 KiB, bytes that are
    not HTTP, a header or path it will not pass on — is answered with the API's problem body
    (``bad_request``, ``application/problem+json``, an ``X-Request-ID``), never a server's own
    bare 400, HTML page or silent close; where a server passes the request on, the application
    answers with a problem body of its own. The server goes on."""
    with serve() as (host, port):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(BAD_HEADS[case])
            status, headers, body = _read_response(sock)
            assert 400 <= status < 500, (status, headers, body)
            assert headers["content-type"] == "application/problem+json", (status, headers, body)
            problem = json.loads(body)
            assert problem["request_id"] == headers["x-request-id"]
            if case in ("head over 16 KiB", "one header line over 16 KiB"):
                assert problem["code"] == "bad_request" and "16384 bytes" in problem["detail"]
        assert requests.get(f"http://{host}:{port}/api/v1/time", timeout=5).status_code == 200


def test_a_refused_request_pipelined_behind_another_is_answered_after_it(market):
    """The web role: a placement-sized body announced too large right behind an ordinary
    request — the first answer comes whole and first, then the 413, then the close."""
    from tests.support import web_server

    with web_server() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: first\r\n\r\n"
                     b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n")
        stream = sock.makefile("rb")
        answers = []
        for _ in range(2):
            status = int(stream.readline().split()[1])
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            answers.append((status, json.loads(body)))
        assert answers[0][0] == 200 and "epoch_ms" in answers[0][1]
        assert answers[1][0] == 413 and answers[1][1]["code"] == "payload_too_large"
        assert stream.read(1) == b""  # closed


def test_a_websocket_handshake_to_the_rest_role_is_answered_as_http(market):
    """The WebSocket API is the ``ws`` role's: the REST role answers the handshake as a plain
    request (404: no such page) and logs no warning telling the operator to install a library."""
    from tests.support import web_server

    with web_server() as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /ws/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        status, headers, body = _read_response(sock)
        assert status == 404, (status, headers, body)  # /ws/v1 is no page of the REST role
        assert "upgrade" not in headers.get("connection", "").lower()
        time.sleep(0.3)
        assert "WARNING" not in server.log() and "websocket" not in server.log().lower(), server.log()[-2000:]


def test_a_console_body_is_cut_at_djangos_limit_before_buffering(serve, market):
    """Outside ``/api/`` (the admin console) the limit is Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    (2.5 MiB), enforced by the server too: a chunked upload never reaches the disk."""
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    with serve() as (host, port), socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        try:
            for _ in range(limit // len(chunk) + 8):  # past the limit, and no terminating chunk
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = _read_response(sock)
        assert status == 413 and json.loads(body)["code"] == "payload_too_large"
        assert _closed(sock)


def test_the_server_does_not_believe_x_forwarded_for_nor_name_itself(serve, market):
    """Whom to believe is the application's decision (``BOURSE_TRUSTED_PROXIES``, none here):
    a server that rewrote the peer from ``X-Forwarded-For`` would let any client choose the
    address its key's IP allowlist and the per-IP limits see."""
    with serve() as (host, port):
        answer = requests.get(f"http://{host}:{port}/api/v1/time", headers={"X-Forwarded-For": "203.0.113.9"},
                              timeout=5)
        assert answer.status_code == 200
        assert "server" not in {name.lower() for name in answer.headers}
        # the application saw the socket's peer: its rate-limit bucket is 127.0.0.1's, and a
        # second request from another claimed address shares that bucket
        again = requests.get(f"http://{host}:{port}/api/v1/time", headers={"X-Forwarded-For": "198.51.100.7"},
                             timeout=5)
        assert int(again.headers["RateLimit"].split("r=")[1].split(";")[0]) < \
            int(answer.headers["RateLimit"].split("r=")[1].split(";")[0])


def test_slow_clients_get_408_and_cannot_starve_the_others(serve, market, monkeypatch):
    # The deadline is long enough that a loaded machine serves the ordinary client well
    # within it; starved, that client would wait for the slow ones' 408s (3 s).
    monkeypatch.setenv("BOURSE_HTTP_REQUEST_TIMEOUT_S", "3")
    with serve() as (host, port):
        slow = []
        for _ in range(40):  # slowloris: headers that never end
            sock = socket.create_connection((host, port), timeout=5)
            sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        started = time.monotonic()
        for _ in range(3):  # trickle a header line each, which resets any idle timer
            for sock in slow:
                sock.sendall(b"X-Slow: 1\r\n")
            # and an ordinary client is served meanwhile, at once
            before = time.monotonic()
            assert requests.get(f"http://{host}:{port}/api/v1/time", timeout=5).status_code == 200
            assert time.monotonic() - before < 2.0
            time.sleep(0.3)
        for sock in slow:
            status, _, body = _read_response(sock, timeout=5)
            assert status == 408 and json.loads(body)["code"] == "request_timeout"
            assert _closed(sock)
            sock.close()
        assert time.monotonic() - started < 8
        # a keep-alive connection gets a fresh deadline per request, and once idle past it is
        # closed without a stray 408 for the client's next request to misread
        with socket.create_connection((host, port), timeout=5) as sock:
            for _ in range(2):
                sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert _read_response(sock)[0] == 200
                time.sleep(1.0)
            sock.settimeout(8)
            assert sock.recv(65536) == b""  # closed silently after 3 s idle


def test_an_idle_keep_alive_connection_lives_out_a_fractional_deadline(serve, market, monkeypatch):
    """The deadline is the one idle timer, to the fraction of a second: a connection idle for
    2.4 s of a 2.9 s deadline still serves (a timer in whole seconds, as uvicorn's own
    keep-alive, closed it at 2 s), and one idle past it is closed silently."""
    monkeypatch.setenv("BOURSE_HTTP_REQUEST_TIMEOUT_S", "2.9")
    with serve() as (host, port), socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200
        time.sleep(2.4)
        sock.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock)[0] == 200
        answered = time.monotonic()
        sock.settimeout(8)
        assert sock.recv(65536) == b""  # closed, without a stray 408
        assert 2.4 < time.monotonic() - answered < 6


def test_form_bodies_reach_the_application_unparsed_by_the_server(serve, market):
    """daphne hands the application the body as bytes; Twisted's own parsing of form bodies
    (multipart, urlencoded) into ``request.args`` is never read, cost CPU on the event loop
    for every POST, and refused a body it could not parse with a bare 400 of its own and a
    dropped connection, before the application (and its error contract) saw the request."""
    with serve() as (host, port), socket.create_connection((host, port), timeout=5) as sock:
        body = b"this is not multipart"
        sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=zz\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status, headers, raw = _read_response(sock)
        assert headers.get("content-type") == "application/problem+json", (status, headers, raw)
        assert status in (401, 415) and json.loads(raw)["code"]
        # The connection is kept: the next request on it is answered.
        sock.sendall(b"GET /api/v1/markets HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, raw = _read_response(sock)
        assert status == 200 and json.loads(raw)
        # A Host the deployment does not serve: the API's problem body, not Django's HTML page.
        sock.sendall(b"GET /api/v1/markets HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        status, headers, raw = _read_response(sock)
        assert status == 400 and headers.get("content-type") == "application/problem+json"
        if headers.get("transfer-encoding") == "chunked":  # refused before Django sized it
            while not raw.endswith(b"\r\n0\r\n\r\n"):
                raw += sock.recv(65536)
            size, _, rest = raw.partition(b"\r\n")
            raw = rest[:int(size, 16)]
        assert json.loads(raw)["code"] == "bad_request", (status, headers, raw)


def _as_daphne_runs_it(script: str) -> list[str]:
    """The lines ``script`` prints in a fresh interpreter that imported the ASGI module as
    daphne does (so Bourse's hooks into daphne and Twisted are installed there, not here)."""
    import subprocess

    from tests.support import PYTHON, subprocess_env

    done = subprocess.run([PYTHON, "-c", "import exchange.asgi\n" + script], env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()


def test_twisted_formats_no_access_line_of_its_own():
    """Twisted's combined-log-format line per request went to a log daphne discards (and
    repeated daphne's JSON access log): ~2.6 % of a REST process's CPU under order load."""
    printed = _as_daphne_runs_it("from daphne.http_protocol import HTTPFactory\n"
                                 "factory = HTTPFactory(None)\n"
                                 "factory.startFactory()\n"
                                 "formatted = []\n"
                                 "factory._logFormatter = lambda *args: formatted.append(args) or 'line'\n"
                                 "factory.log(object())\n"
                                 "print('formatted', len(formatted))\n")
    assert printed[-1] == "formatted 0", printed


def test_daphnes_own_error_pages_are_problem_bodies():
    """daphne answers an application that failed (500) or did not answer in time (503) with a
    page of its own: under Bourse, the API's problem body."""
    printed = _as_daphne_runs_it(
        "import json\n"
        "from daphne.http_protocol import WebRequest\n"
        "class Fake:\n"
        "    def __init__(self): self.sent = []\n"
        "    def handle_reply(self, message): self.sent.append(message)\n"
        "for status, text in ((500, b'Internal Server Error'), (503, b'Service Unavailable')):\n"
        "    fake = Fake()\n"
        "    WebRequest.basic_error(fake, status, text, 'Exception inside application.')\n"
        "    start, body = fake.sent\n"
        "    headers = dict(start['headers'])\n"
        "    problem = json.loads(body['body'])\n"
        "    print(start['status'], headers[b'Content-Type'].decode(), problem['code'],\n"
        "          problem['request_id'] == headers[b'X-Request-ID'].decode())\n")
    assert printed[-2:] == [
        "500 application/problem+json internal_error True", "503 application/problem+json service_unavailable True"]

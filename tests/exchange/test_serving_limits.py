"""Bodies are refused before they are buffered, and slow clients cannot hold the server:
against real daphne (the documented REST and WebSocket server), at the socket level."""
import json
import socket
import time

import pytest
import requests

from tests.ws.test_live_server import daphne

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _http_base(ws_url: str) -> tuple[str, int]:
    host_port = ws_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    return host, int(port)


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


def test_a_declared_oversize_body_is_refused_before_any_of_it_is_sent(market):
    with daphne() as url:
        host, port = _http_base(url)
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1610612736\r\n\r\n")  # 1.5 GiB announced, none sent
            status, headers, body = _read_response(sock)
            assert status == 413 and headers["content-type"] == "application/problem+json"
            assert json.loads(body)["code"] == "payload_too_large"
            assert _closed(sock)


def test_a_chunked_body_is_cut_at_the_limit(market):
    with daphne() as url:
        host, port = _http_base(url)
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


def test_slow_clients_get_408_and_cannot_starve_the_others(market, monkeypatch):
    # The deadline is long enough that a loaded machine serves the ordinary client well
    # within it; starved, that client would wait for the slow ones' 408s (3 s).
    monkeypatch.setenv("BOURSE_HTTP_REQUEST_TIMEOUT_S", "3")
    with daphne() as url:
        host, port = _http_base(url)
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


def test_form_bodies_reach_the_application_unparsed_by_the_server(market):
    """daphne hands the application the body as bytes; Twisted's own parsing of form bodies
    (multipart, urlencoded) into ``request.args`` is never read, cost CPU on the event loop
    for every POST, and refused a body it could not parse with a bare 400 of its own and a
    dropped connection, before the application (and its error contract) saw the request."""
    with daphne() as url:
        host, port = _http_base(url)
        with socket.create_connection((host, port), timeout=5) as sock:
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


def test_twisted_formats_no_access_line_of_its_own():
    """Twisted's combined-log-format line per request went to a log daphne discards (and
    repeated daphne's JSON access log): ~2.6 % of a REST process's CPU under order load. Run
    as daphne runs it: the ASGI module imported, its hooks installed."""
    import subprocess

    from tests.support import PYTHON, subprocess_env

    script = ("import exchange.asgi\n"
              "from daphne.http_protocol import HTTPFactory\n"
              "factory = HTTPFactory(None)\n"
              "factory.startFactory()\n"
              "formatted = []\n"
              "factory._logFormatter = lambda *args: formatted.append(args) or 'line'\n"
              "factory.log(object())\n"
              "print('formatted', len(formatted))\n")
    done = subprocess.run([PYTHON, "-c", script], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "formatted 0", done.stdout

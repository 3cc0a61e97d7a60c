"""nginx in front of Bourse (issue 17 item 3): the example configuration
docs/deploy/nginx/bourse.conf, run by Debian's nginx (.ci/run installs it) on free ports with
a self-signed certificate made here, before the Procfile's ``web`` and ``ws`` roles started
by honcho. Through nginx a request reaches REST and a WebSocket reaches its server; the
client's address is the one Bourse counts (a forged X-Forwarded-For changes nothing); the body
limit and the slow-client timeout apply."""
import asyncio
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support import PYTHON, free_port, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "deploy" / "nginx" / "bourse.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HONCHO = str(Path(PYTHON).parent / "honcho")


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def render(folder: Path, *, web: int, ws: int, tls: int, plain: int) -> Path:
    """The example site with this test's ports and certificate; every edit must apply, so a
    change of the example's shape fails here instead of testing something else."""
    cert, key = self_signed(folder)
    text = EXAMPLE.read_text()
    edits = [
        ("server 127.0.0.1:8000", f"server 127.0.0.1:{web}"),
        ("server 127.0.0.1:8001", f"server 127.0.0.1:{ws}"),
        ("    listen 80;\n", f"    listen 127.0.0.1:{plain};\n"),
        ("    listen [::]:80;\n", ""),
        ("    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{tls} ssl http2;\n"),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("/etc/ssl/bourse/fullchain.pem", str(cert)),
        ("/etc/ssl/bourse/privkey.pem", str(key)),
    ]
    for old, new in edits:
        assert old in text, f"{EXAMPLE.name} no longer has {old!r}"
        text = text.replace(old, new)
    site = folder / "bourse.conf"
    site.write_text(text)
    main = folder / "nginx.conf"
    main.write_text(f"""
user root;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
""")
    return main


def wait_listening(port: int, processes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, log in processes:
            assert process.poll() is None, f"exited while starting:\n{Path(log).read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listening on {port}")


@pytest.fixture
def stack(tmp_path):
    assert os.path.exists(NGINX), "nginx is required: `apt-get install nginx` (.ci/run installs it)"
    web, ws, tls, plain = free_port(), free_port(), free_port(), free_port()
    env = {**subprocess_env(), "BOURSE_WEB_PORT": str(web), "BOURSE_WS_PORT": str(ws),
           "BOURSE_TRUSTED_PROXIES": "127.0.0.1/32", "BOURSE_RATE_LIMIT_IP": "3/86400",
           # one REST process: the address check counts one budget (two processes on the embedded
           # SQLite cache let a 4th request through once; a follow-up, not this test's subject)
           "BOURSE_WEB_PROCESSES": "1",
           "BOURSE_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
           "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    honcho_log = tmp_path / "honcho.log"
    roles = subprocess.Popen([HONCHO, "-f", str(ROOT / "Procfile"), "-d", str(ROOT), "start", "web", "ws"],
                             env=env, stdout=open(honcho_log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    nginx = None
    try:
        wait_listening(web, [(roles, honcho_log)])
        wait_listening(ws, [(roles, honcho_log)])
        config = render(tmp_path, web=web, ws=ws, tls=tls, plain=plain)
        nginx_log = tmp_path / "nginx.out"
        nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log"),
                                  "-g", "daemon off;"], stdout=open(nginx_log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        wait_listening(tls, [(nginx, nginx_log), (roles, honcho_log)])
        yield {"tls": tls, "plain": plain, "logs": (honcho_log, tmp_path / "error.log")}
    finally:
        for process in (nginx, roles):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is this test's own
    return context


def https(port: int, method: str, path: str, *, source: str = "127.0.0.1", headers=None, body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=20, context=tls_context(),
                                       source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        conn.close()


def test_through_nginx(stack):
    tls = stack["tls"]

    # REST through TLS, and plain HTTP sent to it.
    status, headers, body = https(tls, "GET", "/api/v1/time", source="127.0.0.10")
    assert status == 200, body
    assert "server_time" in json.loads(body) or json.loads(body)
    plain = http.client.HTTPConnection("127.0.0.1", stack["plain"], timeout=10)
    plain.request("GET", "/api/v1/time", headers={"Host": "api.example.net"})
    redirect = plain.getresponse()
    assert redirect.status == 301 and redirect.getheader("Location") == "https://api.example.net/api/v1/time"
    plain.close()

    # A WebSocket through the upgrade. The asyncio client: websockets' threaded (sync) client
    # reads the TLS socket on a thread of its own while it writes the upgrade request, and once
    # in CI's run of a1bf883 the request never reached nginx (its log: the TLS handshake done,
    # then "client timed out while waiting for request"; websockets issue #1387 reports the
    # sync client's handshake timing out so, 1 in 20). One thread, one TLS socket: no race.
    async def ping() -> dict:
        async with connect(f"wss://127.0.0.1:{tls}/ws/v1", ssl=tls_context(), open_timeout=20) as websocket:
            await websocket.send(json.dumps({"op": "ping", "id": 7}))
            return json.loads(await asyncio.wait_for(websocket.recv(), 10))

    assert asyncio.run(ping()) == {"type": "pong", "id": 7}

    # The client's address: 127.0.0.2 has 3 requests a minute whatever X-Forwarded-For it forges;
    # 127.0.0.3 is another client with its own budget.
    codes = [https(tls, "GET", "/api/v1/time", source="127.0.0.2",
                   headers={"X-Forwarded-For": f"203.0.113.{n}"})[0] for n in range(4)]
    assert codes == [200, 200, 200, 429]
    assert https(tls, "GET", "/api/v1/time", source="127.0.0.3")[0] == 200

    # The body limit: nginx refuses more than 64 KiB in Bourse's error format, before Bourse.
    status, headers, body = https(tls, "POST", "/api/v1/orders", source="127.0.0.4", body=b"x" * (65 * 1024),
                                  headers={"Content-Type": "application/json"})
    problem = json.loads(body)
    assert (status, problem["code"], headers["Content-Type"]) == (413, "payload_too_large", "application/problem+json")
    # Under the limit the request reaches Bourse (which refuses the unsigned order itself).
    status, headers, body = https(tls, "POST", "/api/v1/orders", source="127.0.0.5", body=b"{}",
                                  headers={"Content-Type": "application/json"})
    assert status == 401 and json.loads(body)["code"] != "payload_too_large"

    # A slow client (headers never finished) is cut after client_header_timeout (10 s).
    raw = tls_context().wrap_socket(socket.create_connection(("127.0.0.1", tls), timeout=30,
                                                             source_address=("127.0.0.6", 0)))
    raw.sendall(b"GET /api/v1/time HTTP/1.1\r\nHost: localhost\r\n")
    started = time.monotonic()
    try:
        leftover = raw.recv(4096)
    except (ConnectionError, ssl.SSLError):
        leftover = b""
    waited = time.monotonic() - started
    raw.close()
    assert 8 <= waited < 25 and b"200 OK" not in leftover, (waited, leftover[:200])

"""Production settings are production settings: ``manage.py check --deploy`` passes, with no
warning, under the production environment docs/operations.md documents; static files are
served from the collected set only."""
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest

from tests.support import PYTHON, free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_CSS = "/static/admin/css/base.css"


def documented_environment() -> dict[str, str]:
    """The block after ``<!-- production-environment -->`` in docs/operations.md, with the
    placeholders (``<...>``) filled with fresh secrets."""
    text = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"<!-- production-environment -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "docs/operations.md lost its production-environment block"
    env = {}
    for line in block.group(1).splitlines():
        name, _, value = line.partition("=")
        env[name.strip()] = value.strip()
    assert env["SECRET_KEY"].startswith("<") and env["BOURSE_ENCRYPTION_KEYS"].startswith("<")
    from cryptography.fernet import Fernet

    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["BOURSE_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    env["BOURSE_METRICS_TOKEN"] = secrets.token_urlsafe(24)
    assert not any(value.startswith("<") for value in env.values()), env
    return env


def production_env(tmp_path, **overrides) -> dict[str, str]:
    """Only the documented variables (nothing of the test run's own environment leaks in),
    the data folder and the multiprocess metrics folder under ``tmp_path``."""
    import os

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1", **documented_environment()}
    env["BOURSE_DATA_DIR"] = str(tmp_path / "data")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    (tmp_path / "metrics").mkdir(exist_ok=True)
    env.update(overrides)
    return {name: value for name, value in env.items() if value is not None}


def manage(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_check_deploy_passes_with_the_documented_environment(tmp_path):
    done = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNING" not in done.stderr.upper().replace("PY.WARNINGS", "")


@pytest.mark.parametrize(("left_out", "warning"), [
    ("SECURE_HSTS_SECONDS", "security.W004"),
    ("SESSION_COOKIE_SECURE", "bourse.W012"),
    ("CSRF_COOKIE_SECURE", "bourse.W016"),
    ("SECURE_SSL_REDIRECT", "security.W008"),
])
def test_check_deploy_fails_on_any_warning(tmp_path, left_out, warning):
    done = manage(production_env(tmp_path, **{left_out: None}), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    assert warning in done.stdout + done.stderr


def test_finders_only_outside_production(tmp_path):
    code = "from django.conf import settings; print(settings.WHITENOISE_USE_FINDERS, settings.STORAGES['staticfiles']['BACKEND'])"
    production = manage(production_env(tmp_path), "shell", "--no-imports", "-c", code)
    assert production.stdout.split() == ["False", "whitenoise.storage.CompressedStaticFilesStorage"], production.stderr
    embedded = production_env(tmp_path, DATABASE_URL=None, REDIS_URL=None, BOURSE_ALLOW_GENERATED_SECRETS="1")
    assert manage(embedded, "shell", "--no-imports", "-c", code).stdout.split()[0] == "True"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is the answer under test, never followed (it points off this machine)


_opener = urllib.request.build_opener(_NoRedirect)


def _get(url: str, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _serve(env):
    """gunicorn (WSGI) on a free port: static files, health checks and the HTTPS redirect
    need neither the database nor Redis (daphne would check both before listening)."""
    port = free_port()
    process = subprocess.Popen([PYTHON, "-m", "gunicorn", "exchange.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/healthz", Host="exchange.example.net", **{"X-Forwarded-Proto": "https"})
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(process.stderr.read().decode()[-3000:]) from None
            time.sleep(0.2)


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_production_serves_the_collected_set_only(tmp_path):
    # Addresses on this machine where nothing listens: nothing here may reach the documented hosts.
    env = production_env(tmp_path, DATABASE_URL="postgres://bourse@127.0.0.1:1/bourse", REDIS_URL="redis://127.0.0.1:1/0")
    headers = {"Host": "exchange.example.net", "X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"}
    # Not collected yet: the apps' own files are not served.
    process, port = _serve(env)
    try:
        status, _, _ = _get(f"http://127.0.0.1:{port}{ADMIN_CSS}", **headers)
        assert status == 404
    finally:
        _stop(process)
    collected = manage(env, "collectstatic", "--noinput", timeout=300)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "data" / "static" / "admin" / "css" / "base.css.gz").exists()
    process, port = _serve(env)
    try:
        status, response_headers, _ = _get(f"http://127.0.0.1:{port}{ADMIN_CSS}", **headers)
        assert status == 200
        assert response_headers.get("Content-Encoding") == "gzip"  # the compressed copy collectstatic wrote
        # Probes over plain HTTP are not redirected to HTTPS (SECURE_SSL_REDIRECT is on).
        status, _, _ = _get(f"http://127.0.0.1:{port}/healthz", Host="exchange.example.net")
        assert status == 200
        status, response_headers, _ = _get(f"http://127.0.0.1:{port}/api/v1/time", Host="exchange.example.net")
        assert status == 301 and response_headers["Location"].startswith("https://")
    finally:
        _stop(process)

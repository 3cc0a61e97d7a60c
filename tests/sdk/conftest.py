"""Fixtures of the TypeScript SDK tests: the compiled SDK and examples, and a live Bourse
(web server and engine processes on the test database). `make test` installs the SDK's npm
dependencies (`npm ci`, only when package-lock.json changed)."""
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.sdk.helpers import OUT, PYTHON, ROOT, TSC, free_port, manage, node, ok, subprocess_env


@pytest.fixture(scope="session")
def compiled():
    """dist/ (ESM + CJS, what `@bourse/sdk` resolves to) and the compiled examples and
    integration scenarios in .examples-out/, built once per session."""
    ok(node("scripts/build.mjs"))
    shutil.rmtree(OUT, ignore_errors=True)
    ok(node(TSC, "-p", "tsconfig.examples.json"))
    return OUT


@pytest.fixture
def live_bourse(transactional_db, tmp_path):
    """A Bourse web server (daphne, HTTP + WebSocket) and engine on a free 127.0.0.1 port."""
    manage("create_market", "BTC-USD", "--tick-size", "0.01", "--lot-size", "0.0001",
           "--base-scale", "8", "--quote-scale", "6")
    port = free_port()
    # Settlement runs inline in the engine (eager Celery) rather than in a separate worker:
    # one process fewer on the 2-core machine, same settlement code.
    env = {**subprocess_env(), "BOURSE_ENGINE_WAIT_S": "10", "CELERY_TASK_ALWAYS_EAGER": "1"}
    log = (tmp_path / "server.log").open("w")
    children = [
        subprocess.Popen([PYTHON, "manage.py", "run_engine"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT),
        subprocess.Popen([PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exchange.asgi:application"],
                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/time", timeout=2):
                    break
            except OSError:
                assert all(c.poll() is None for c in children), (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "server did not start\n" + (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        yield url
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        log.close()

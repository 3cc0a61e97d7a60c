"""``manage.py serve_metrics``: /metrics on a machine with no web process — the machine's
multiprocess counters (here an engine batch counted by another process), under the same
access rule as the web endpoint."""
import re
import signal
import subprocess
import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import PYTHON, subprocess_env

pytestmark = pytest.mark.slow


def _serve(env) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([PYTHON, "manage.py", "serve_metrics", "--port", "0"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # its log lines (JSON)
        match = re.search(r"serving metrics on 127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # drained from now on
            return process, int(match.group(1))
    raise AssertionError(f"serve_metrics did not start (exit {process.wait(10)})")


def test_an_engine_only_host_serves_its_counters_to_allowed_scrapers_only(tmp_path):
    env = {**subprocess_env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
           "BOURSE_METRICS_ALLOW": "127.0.0.1/32", "BOURSE_METRICS_TOKEN": ""}
    # another process of the machine (as the engine does after each batch) counts into the folder
    counted = subprocess.run(
        [PYTHON, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'exchange.settings'); "
                       "django.setup(); from exchange import metrics; metrics.engine_batch('BTC-USD', 7, 0.004)"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert counted.returncode == 0, counted.stderr
    process, port = _serve(env)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(answer.text) for s in family.samples}
        assert samples[("bourse_engine_batch_commands_sum", (("market", "BTC-USD"),))] == 7
        assert samples[("bourse_engine_batch_commands_count", (("market", "BTC-USD"),))] == 1
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0

    # the same server where loopback is not allowed: only the bearer token gets in
    env.update(BOURSE_METRICS_ALLOW="10.0.0.0/8", BOURSE_METRICS_TOKEN="scrape-token-for-the-test")
    process, port = _serve(env)
    try:
        refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert refused.status_code == 403 and refused.headers["Content-Type"] == "application/problem+json"
        assert refused.json()["code"] == "permission_denied"
        wrong = requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 403
        right = requests.get(f"http://127.0.0.1:{port}/metrics",
                             headers={"Authorization": "Bearer scrape-token-for-the-test"}, timeout=10)
        assert right.status_code == 200 and "bourse_engine_batch_commands" in right.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0

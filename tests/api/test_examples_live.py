"""The quickstart's copy-paste clients (docs/examples), run as an integrator would run them:
as separate processes against a live Bourse server, with credentials from create_trader."""
import json
import os
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.factories import AssetFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def funded(live_server):
    AssetFactory(code="USD", scale=2)
    AssetFactory(code="BTC", scale=8)

    def create(scheme: str) -> dict:
        out = StringIO()
        call_command("create_trader", f"quick-{scheme}", "--deposit", "USD=10000", "--deposit", "BTC=0.5",
                     "--scheme", scheme, "--json", stdout=out)
        return json.loads(out.getvalue())

    return create


def run(argv, live_server, credentials) -> str:
    env = {**os.environ, "BOURSE_URL": live_server.url, "BOURSE_KEY_ID": credentials["key_id"]}
    env.pop("BOURSE_SECRET", None)
    env.pop("BOURSE_PRIVATE_KEY", None)
    if "secret" in credentials:
        env["BOURSE_SECRET"] = credentials["secret"]
    else:
        env["BOURSE_PRIVATE_KEY"] = credentials["private_key"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def check_output(stdout: str, credentials: dict) -> None:
    assert f"account {credentials['account_id']} " in stdout
    assert "key scopes read,trade" in stdout
    lines = stdout.splitlines()
    assert any(line.startswith("USD") and "10000.00" in line and "locked" in line for line in lines), stdout
    assert any(line.startswith("BTC") and "0.50000000" in line for line in lines), stdout
    assert sum(line.startswith("ledger ") and " deposit " in line for line in lines) == 2, stdout


@pytest.mark.parametrize("scheme", ["hmac", "ed25519"])
def test_python_example(funded, live_server, scheme):
    credentials = funded(scheme)
    check_output(run([sys.executable, str(EXAMPLES / "quickstart.py")], live_server, credentials), credentials)


@pytest.mark.parametrize("scheme", ["hmac", "ed25519"])
def test_node_example(funded, live_server, scheme):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed on this machine")
    credentials = funded(scheme)
    check_output(run([node, str(EXAMPLES / "quickstart.mjs")], live_server, credentials), credentials)


def test_python_example_reports_a_refusal(funded, live_server):
    credentials = {**funded("hmac"), "secret": "not-the-secret"}
    env = {**os.environ, "BOURSE_URL": live_server.url, "BOURSE_KEY_ID": credentials["key_id"],
           "BOURSE_SECRET": credentials["secret"]}
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "401 invalid_credentials" in result.stderr

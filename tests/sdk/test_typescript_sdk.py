"""The TypeScript SDK (sdk/typescript, @bourse/sdk), checked the way CI must: its generated
types are fresh against docs/openapi.yaml, it type-checks under `strict` with its examples,
its Vitest unit tests pass, and, against a live Bourse (web server and engine processes on
the test database), its integration scenario and the docs' TypeScript quickstart run green.

`make test` installs the npm dependencies (`npm ci`, only when package-lock.json changed)."""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import PYTHON, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "sdk" / "typescript"
NODE = shutil.which("node")
OUT = SDK / ".examples-out"

pytestmark = [pytest.mark.slow]


def node(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    assert NODE, "node (20+) is required for the TypeScript SDK tests"
    assert (SDK / "node_modules" / ".bin").is_dir(), "SDK dependencies missing: run `make sdk-install`"
    return subprocess.run([NODE, *args], cwd=SDK, env=env, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


TSC = "node_modules/typescript/bin/tsc"


def test_generated_types_are_fresh_against_the_committed_spec():
    ok(node("scripts/generate.mjs", "--check"))


def test_package_and_examples_type_check_strictly():
    assert json.loads(re.sub(r"//.*", "", (SDK / "tsconfig.json").read_text()))["compilerOptions"]["strict"] is True
    ok(node(TSC, "--noEmit", "-p", "tsconfig.json"))
    ok(node(TSC, "--noEmit", "-p", "tsconfig.examples.json"))


def test_vitest_unit_tests_pass():
    out = ok(node("node_modules/vitest/vitest.mjs", "run", env={**os.environ, "NO_COLOR": "1", "CI": "true"}))
    passed = re.search(r"Tests\s+(\d+) passed", out)
    assert passed and int(passed.group(1)) > 0 and "failed" not in out, out[-3000:]


@pytest.fixture(scope="module")
def compiled():
    """dist/ (ESM + CJS, what `@bourse/sdk` resolves to) and the compiled examples/scenarios."""
    ok(node("scripts/build.mjs"))
    shutil.rmtree(OUT, ignore_errors=True)
    ok(node(TSC, "-p", "tsconfig.examples.json"))
    return OUT


def test_the_build_serves_esm_and_commonjs(compiled):
    cjs = ok(node("-e", "const s = require('@bourse/sdk'); console.log(typeof s.Bourse, typeof s.BourseError)"))
    esm = ok(node("--input-type=module", "-e", "import { Bourse } from '@bourse/sdk'; console.log(typeof Bourse)"))
    assert (cjs.strip(), esm.strip()) == ("function function", "function")
    assert (SDK / "dist" / "esm" / "index.d.ts").is_file() and (SDK / "dist" / "cjs" / "index.d.ts").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=subprocess_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def create_trader(name: str, *deposits: str, scheme: str = "hmac") -> dict:
    argv = ["create_trader", name, "--scheme", scheme, "--json"]
    for deposit in deposits:
        argv += ["--deposit", deposit]
    return json.loads(manage(*argv))


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


def test_rest_scenario_through_the_sdk(compiled, live_bourse):
    from trading.models import Fill, Order

    maker = create_trader("sdk-maker", "BTC=1", "USD=1000")
    taker = create_trader("sdk-taker", "USD=10000", scheme="ed25519")
    env = {**os.environ, "BOURSE_URL": live_bourse, "BOURSE_MAKER": json.dumps(maker), "BOURSE_TAKER": json.dumps(taker)}
    out = ok(node(str(compiled / "sdk" / "typescript" / "integration" / "rest.mjs"), env=env, timeout=120))
    summary = json.loads(out.strip().splitlines()[-1])

    assert summary["markets"] == ["BTC-USD"]
    assert (summary["maker_account"], summary["taker_account"]) == (maker["account_id"], taker["account_id"])
    assert summary["taker_scheme"] == "ed25519"
    rested, bought = summary["rested"], summary["bought"]
    assert rested["status"] == "open" and summary["cancelled"]["status"] == "cancelled"
    assert [[float(p), float(q)] for p, q in summary["book_asks"]] == [[100.0, 0.5]]
    assert (bought["status"], bought["filled"]) == ("filled", "0.20000000")
    assert bought["average_price"].startswith("100.00")
    assert summary["taker_fills"] == [{"order_id": bought["order_id"], "liquidity": "taker",
                                       "price": summary["taker_fills"][0]["price"], "quantity": "0.20000000"}]
    assert summary["maker_fills"] == [{"order_id": rested["order_id"], "liquidity": "maker", "client_order_id": "sdk-ask-1"}]
    assert [p["net_quantity"] for p in summary["taker_position"]] == ["0.20000000"]
    assert summary["taker_balances"]["BTC"] == {"available": "0.20000000", "locked": "0.00000000"}
    assert summary["taker_balances"]["USD"]["locked"] == "0.000000"
    assert "deposit" in summary["maker_ledger_kinds"] and "trade" in summary["maker_ledger_kinds"]
    # Pagination walked every one of the maker's orders, one per page, each exactly once.
    maker_orders = set(Order.objects.filter(account_id=maker["account_id"]).values_list("pk", flat=True))
    assert len(summary["maker_orders"]) == len(maker_orders) - 1  # the cancel-all order came later
    assert {str(pk) for pk in maker_orders} == set(summary["maker_orders"]) | {summary["extra_order"]}
    # The idempotent resubmission made no second order; fills in the database match.
    assert Order.objects.filter(account_id=maker["account_id"], client_order_id="sdk-ask-1").count() == 1
    assert Fill.objects.filter(order_id=bought["order_id"]).count() == 1

    errors = summary["errors"]
    assert (errors["tick"]["status"], errors["tick"]["code"], errors["tick"]["fields"]) == (400, "validation_error", ["price"])
    assert (errors["broke"]["status"], errors["broke"]["code"]) == (422, "insufficient_balance")
    assert (errors["missing"]["status"], errors["missing"]["code"]) == (404, "not_found")
    assert (errors["closed"]["status"], errors["closed"]["code"]) == (409, "order_closed")
    assert (errors["unknownMarket"]["status"], errors["unknownMarket"]["code"]) == (422, "market_not_found")
    assert (errors["badSecret"]["status"], errors["badSecret"]["code"]) == (401, "invalid_credentials")
    assert all(e["request_id"] for e in errors.values())

    assert summary["skewed_account"] == maker["account_id"]
    assert abs(summary["skew_corrected_offset_ms"]) < 5000
    assert set(summary["cancel_all"]) == {rested["order_id"], summary["extra_order"]}
    names = {p["name"] for p in summary["rate_limit"]["policies"]}
    assert "key" in names and summary["rate_limit"]["limits"][0]["remaining"] > 0


@pytest.mark.parametrize("scheme", ["hmac", "ed25519"])
def test_docs_typescript_quickstart(compiled, live_bourse, scheme):
    credentials = create_trader(f"quick-ts-{scheme}", "USD=10000", "BTC=0.5", scheme=scheme)
    env = {**os.environ, "BOURSE_URL": live_bourse, "BOURSE_KEY_ID": credentials["key_id"]}
    env.pop("BOURSE_SECRET", None)
    env.pop("BOURSE_PRIVATE_KEY", None)
    env["BOURSE_SECRET" if scheme == "hmac" else "BOURSE_PRIVATE_KEY"] = credentials.get("secret") or credentials["private_key"]
    stdout = ok(node(str(compiled / "docs" / "examples" / "quickstart.mjs"), env=env, timeout=60))
    assert f"account {credentials['account_id']} " in stdout and "key scopes read,trade" in stdout
    lines = stdout.splitlines()
    assert any(line.startswith("USD") and "10000.00" in line and "locked" in line for line in lines), stdout
    assert any(line.startswith("BTC") and "0.50000000" in line for line in lines), stdout
    assert sum(line.startswith("ledger ") and " deposit " in line for line in lines) == 2, stdout


def test_docs_typescript_quickstart_reports_a_refusal(compiled, live_bourse):
    credentials = create_trader("quick-ts-bad", "USD=1")
    env = {**os.environ, "BOURSE_URL": live_bourse, "BOURSE_KEY_ID": credentials["key_id"], "BOURSE_SECRET": "wrong"}
    env.pop("BOURSE_PRIVATE_KEY", None)
    result = node(str(compiled / "docs" / "examples" / "quickstart.mjs"), env=env, timeout=60)
    assert result.returncode == 1 and "401 invalid_credentials" in result.stderr, result.stderr

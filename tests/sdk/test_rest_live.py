"""The TypeScript SDK against a live Bourse: the REST scenario (sdk/typescript/integration/
rest.mts) and the integrator docs' TypeScript quickstart, with HMAC and Ed25519 keys."""
import json
import os

import pytest

from tests.sdk.helpers import create_trader, node, ok, run_scenario

pytestmark = [pytest.mark.slow]


def test_rest_scenario_through_the_sdk(compiled, live_bourse):
    from trading.models import Fill, Order

    maker = create_trader("sdk-maker", "BTC=1", "USD=1000")
    taker = create_trader("sdk-taker", "USD=10000", scheme="ed25519")
    summary = run_scenario("rest", BOURSE_URL=live_bourse, BOURSE_MAKER=json.dumps(maker), BOURSE_TAKER=json.dumps(taker))

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

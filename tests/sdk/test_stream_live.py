"""The TypeScript SDK's WebSocket client against a live Bourse (sdk/typescript/integration/
stream.mts): the book and private streams, and a resume after a forced disconnect."""
import json

import pytest

from tests.sdk.helpers import create_trader, run_scenario

pytestmark = [pytest.mark.slow]


def test_stream_scenario_through_the_sdk(compiled, live_bourse):
    """Book and private streams over /ws/v1, including a resume after a forced disconnect."""
    maker = create_trader("ws-maker", "BTC=1")
    taker = create_trader("ws-taker", "USD=10000", scheme="ed25519")
    summary = run_scenario("stream", BOURSE_URL=live_bourse, BOURSE_MAKER=json.dumps(maker), BOURSE_TAKER=json.dumps(taker))

    assert summary["subscribed"] == ["book:BTC-USD", "trades:BTC-USD", "orders", "fills", "balances"]
    assert summary["ping_ms_ok"] is True
    first, missed = summary["first_order"], summary["missed_order"]
    # Every order and fill event of the taker arrived once, in sequence, including the ones
    # that happened while it was disconnected (replayed by `since` on resubscription).
    fills = summary["fill_events"]
    assert [f["order_id"] for f in fills] == [first, missed]
    assert [f["sequence"] for f in fills] == list(range(fills[0]["sequence"], fills[0]["sequence"] + 2))
    statuses = {(o["order_id"], o["status"]) for o in summary["order_events"]}
    assert {(first, "filled"), (missed, "filled")} <= statuses
    assert len({o["sequence"] for o in summary["order_events"]}) == len(summary["order_events"])
    assert summary["balance_assets"] == ["BTC", "USD"]
    # The rebuilt book matches the server's after the resume.
    assert [[float(p), float(q)] for p, q in summary["book_final"]["asks"]] == [[100.0, 0.3]]
    assert summary["book_final"]["sequence"] == summary["rest_book_sequence"]
    assert summary["events"][:3] == ["open", "close", "reopen"]
    # every book frame's checksum matched the SDK's local book (a mismatch is a "checksum" event)
    assert not [e for e in summary["events"] if e.startswith(("gap", "resync", "error", "checksum"))], summary["events"]
    assert summary["unsubscribed"] == ["trades:BTC-USD"]

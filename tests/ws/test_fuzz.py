"""Fuzzing the WebSocket frame handler with a fixed, small budget (CI replays the same
examples): any frame a client sends is answered by frames of the documented types, never
an internal error, and the connection is closed only by a documented policy close."""
import json
import os

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ws.helpers import application, scenario

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = settings(max_examples=int(os.environ.get("BOURSE_FUZZ_EXAMPLES", "40")), deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True), st.text(max_size=20))
CHANNELS = st.one_of(
    st.sampled_from(["book:BTC-USD", "trades:BTC-USD", "ticker:BTC-USD", "orders", "fills", "balances",
                     "book:", "book:NOPE-USD", ":BTC-USD", "book:BTC-USD:1m", "x" * 200]),
    st.text(max_size=30),
)
OPS = st.sampled_from(["ping", "subscribe", "unsubscribe", "auth", "nope", ""])
MESSAGES = st.one_of(
    st.fixed_dictionaries(
        {"op": st.one_of(OPS, SCALARS)},
        optional={"id": SCALARS, "channels": st.one_of(st.lists(CHANNELS, max_size=8), SCALARS),
                  "since": st.one_of(SCALARS, st.dictionaries(CHANNELS, SCALARS, max_size=3)),
                  "key": SCALARS, "timestamp": SCALARS, "nonce": SCALARS, "signature": SCALARS, "window": SCALARS},
    ).map(json.dumps),
    st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3)).map(json.dumps),
    st.text(min_size=1, max_size=200),
    st.just("[" * 5000 + "]" * 5000),
)
DOCUMENTED = {"pong", "subscribed", "unsubscribed", "error", "auth", "snapshot", "ticker", "update"}


@BUDGET
@given(frames=st.lists(MESSAGES, min_size=1, max_size=6))
def test_any_frames_get_documented_answers(market, frames):
    @scenario
    async def run():
        communicator = WebsocketCommunicator(application, "/ws/v1")
        assert (await communicator.connect())[0]
        closed = False
        try:
            for frame in frames:
                await communicator.send_to(text_data=frame)
            closed = False
            while not await communicator.receive_nothing(timeout=0.3):  # until every answer is read
                output = await communicator.receive_output(timeout=1)
                if output["type"] == "websocket.close":
                    assert output["code"] in (4001, 4009, 4029)
                    closed = True
                    break
                reply = json.loads(output["text"])
                assert reply["type"] in DOCUMENTED, reply
                assert reply.get("code") != "internal_error", reply
        finally:
            if not closed:
                await communicator.disconnect()

    run()

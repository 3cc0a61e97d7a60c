"""Every op and every refusal of /ws/v1, over Channels' WebsocketCommunicator.

Each refusal is an ``error`` frame with a stable code and the client's ``id``; the
connection stays usable afterwards (a ``ping`` still answers), except past the inbound
message rate, the work budget and the connection limits, which close with application close
codes (4029 rate_limited, 4001 too_many_connections).
"""
import json

import pytest
from channels.testing import WebsocketCommunicator

from tests.ws.helpers import application, auth_op, checked_frame, connected, make_key, scenario

pytestmark = pytest.mark.django_db(transaction=True)


async def still_alive(ws):
    assert await ws.ask({"op": "ping", "id": "alive"}) == {"type": "pong", "id": "alive"}


@scenario
async def test_ping_echoes_the_id():
    async with connected() as ws:
        assert await ws.ask({"op": "ping", "id": 7}) == {"type": "pong", "id": 7}
        assert await ws.ask({"op": "ping"}) == {"type": "pong", "id": None}


@pytest.mark.parametrize("message, code", [
    ("{not json", "invalid_message"),
    ("[1, 2]", "invalid_message"),
    ('"ping"', "invalid_message"),
    ({"op": "dance", "id": "x"}, "unknown_op"),
    ({"id": "x"}, "unknown_op"),
    ({"op": 5, "id": "x"}, "unknown_op"),
    ({"op": "subscribe", "id": "x"}, "validation_error"),
    ({"op": "subscribe", "id": "x", "channels": "book:BTC-USD"}, "validation_error"),
    ({"op": "subscribe", "id": "x", "channels": []}, "validation_error"),
    ({"op": "subscribe", "id": "x", "channels": ["weather"]}, "unknown_channel"),
    ({"op": "subscribe", "id": "x", "channels": ["book:NOPE-USD"]}, "unknown_channel"),
    ({"op": "subscribe", "id": "x", "channels": ["book:"]}, "unknown_channel"),
    ({"op": "unsubscribe", "id": "x", "channels": ["trades:NOPE-USD"]}, "unknown_channel"),
    ({"op": "subscribe", "id": "x", "channels": ["orders"]}, "not_authenticated"),
    ({"op": "subscribe", "id": "x", "channels": ["fills", "balances"]}, "not_authenticated"),
    ({"op": "auth", "id": "x"}, "missing_credentials"),
])
@scenario
async def test_refusals_are_error_frames_and_the_connection_survives(message, code):
    async with connected() as ws:
        reply = await ws.ask(message)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        if isinstance(message, dict):
            assert reply["id"] == message.get("id")
        await still_alive(ws)


@scenario
async def test_binary_frames_are_refused():
    async with connected() as ws:
        await ws.c.send_to(bytes_data=b"\x00\x01")
        reply = await ws.recv()
        assert reply["code"] == "invalid_message"
        await still_alive(ws)


@scenario
async def test_frame_too_large(settings):
    settings.BOURSE_WS_MAX_FRAME_BYTES = 100
    async with connected() as ws:
        reply = await ws.ask({"op": "ping", "id": "x", "pad": "y" * 200})
        assert reply["code"] == "payload_too_large" and reply["limit"] == 100
        await still_alive(ws)


@scenario
async def test_unknown_channel_names_every_unknown_one_and_subscribes_nothing(market):
    async with connected() as ws:
        reply = await ws.ask({"op": "subscribe", "id": 1, "channels": [f"trades:{market.symbol}", "x", "book:Q-R"]})
        assert reply["code"] == "unknown_channel"
        assert [e["channel"] for e in reply["errors"]] == ["x", "book:Q-R"]
        # Nothing was subscribed: unsubscribing the valid one removes nothing.
        reply = await ws.ask({"op": "unsubscribe", "id": 2, "channels": [f"trades:{market.symbol}"]})
        assert reply == {"type": "unsubscribed", "id": 2, "channels": []}


@scenario
async def test_auth_then_private_subscribe():
    key = await make_key()
    async with connected() as ws:
        reply = await ws.ask(auth_op(key, message_id="a1"))
        assert reply == {"type": "auth", "id": "a1", "key": key.key_id, "account_id": str(key.account_id)}
        reply = await ws.ask({"op": "subscribe", "id": "s1", "channels": ["orders", "fills", "balances"]})
        assert reply == {"type": "subscribed", "id": "s1", "channels": [
            {"channel": "orders", "sequence": 0}, {"channel": "fills", "sequence": 0},
            {"channel": "balances", "sequence": 0}]}
        reply = await ws.ask(auth_op(key, message_id="a2"))
        assert reply["code"] == "already_authenticated" and reply["id"] == "a2"


@scenario
async def test_auth_with_ed25519_key():
    key = await make_key(scheme="ed25519")
    async with connected() as ws:
        assert (await ws.ask(auth_op(key)))["type"] == "auth"


@pytest.mark.parametrize("tamper, code", [
    ({"signature": "AAAA"}, "invalid_credentials"),
    ({"key": "bk_doesnotexist000000000000"}, "invalid_credentials"),
    ({"path": "/api/v1/orders"}, "invalid_credentials"),  # signed for another path
    ({"timestamp": 1}, "timestamp_out_of_window"),
    ({"nonce": "short"}, "invalid_credentials"),
    ({"timestamp": ["x"]}, "invalid_credentials"),
])
@scenario
async def test_auth_refusals(tamper, code):
    key = await make_key()
    async with connected() as ws:
        op = auth_op(key, path=tamper.pop("path", "/ws/v1"),
                     **({"timestamp": tamper.pop("timestamp")} if isinstance(tamper.get("timestamp"), int) else {}))
        op.update(tamper)
        op["id"] = "bad"
        reply = await ws.ask(op)
        assert reply["type"] == "error" and reply["code"] == code and reply["id"] == "bad", reply
        # Not authenticated: private channels are still refused; a good auth works.
        assert (await ws.ask({"op": "subscribe", "channels": ["orders"]}))["code"] == "not_authenticated"
        assert (await ws.ask(auth_op(key)))["type"] == "auth"


@scenario
async def test_nonce_reuse_is_refused():
    key = await make_key()
    op = auth_op(key)
    async with connected() as first:
        assert (await first.ask(op))["type"] == "auth"
    async with connected() as second:
        assert (await second.ask(op))["code"] == "nonce_reused"


@scenario
async def test_revoked_key_and_missing_scope():
    from channels.db import database_sync_to_async

    from apikeys.services import apikey_revoke

    no_read = await make_key(scopes=("trade",))
    revoked = await make_key()
    await database_sync_to_async(apikey_revoke)(key=revoked)
    async with connected() as ws:
        assert (await ws.ask(auth_op(no_read)))["code"] == "permission_denied"
        assert (await ws.ask(auth_op(revoked)))["code"] == "key_revoked"


@scenario
async def test_too_many_subscriptions(settings, market):
    settings.BOURSE_WS_MAX_SUBSCRIPTIONS = 2
    s = market.symbol
    async with connected() as ws:
        reply = await ws.ask({"op": "subscribe", "id": 1, "channels": [f"trades:{s}"]})
        assert reply["type"] == "subscribed"
        reply = await ws.ask({"op": "subscribe", "id": 2, "channels": [f"book:{s}", f"ticker:{s}"]})
        assert reply["code"] == "too_many_subscriptions" and reply["limit"] == 2 and reply["id"] == 2
        # All or nothing: neither was subscribed; one more still fits.
        reply = await ws.ask({"op": "subscribe", "id": 3, "channels": [f"ticker:{s}", f"trades:{s}"]})
        assert reply["type"] == "subscribed" and [c["channel"] for c in reply["channels"]] == [f"ticker:{s}"]


@scenario
async def test_inbound_rate_limit_closes_with_4029(settings):
    settings.BOURSE_WS_MAX_MESSAGES_PER_S = 3
    communicator = WebsocketCommunicator(application, "/ws/v1")
    assert (await communicator.connect())[0]
    for i in range(4):
        await communicator.send_to(text_data=json.dumps({"op": "ping", "id": i}))
    replies = [checked_frame(await communicator.receive_from()) for _ in range(4)]
    assert [r["type"] for r in replies] == ["pong", "pong", "pong", "error"]
    assert replies[-1]["code"] == "rate_limited"
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4029}
    await communicator.disconnect()


@scenario
async def test_connections_per_ip(settings):
    settings.BOURSE_WS_MAX_CONNECTIONS_PER_IP = 1
    async with connected() as ws:
        await still_alive(ws)
        extra = WebsocketCommunicator(application, "/ws/v1")
        assert (await extra.connect())[0]
        reply = checked_frame(await extra.receive_from())
        assert reply["code"] == "too_many_connections" and reply["limit"] == 1
        assert await extra.receive_output(timeout=2) == {"type": "websocket.close", "code": 4001}
        await extra.disconnect()
    async with connected() as ws:  # the slot was freed
        await still_alive(ws)


@scenario
async def test_connections_per_key(settings):
    settings.BOURSE_WS_MAX_CONNECTIONS_PER_KEY = 1
    key = await make_key()
    async with connected() as first:
        assert (await first.ask(auth_op(key)))["type"] == "auth"
        second = WebsocketCommunicator(application, "/ws/v1")
        assert (await second.connect())[0]
        await second.send_to(text_data=json.dumps(auth_op(key, message_id=9)))
        reply = checked_frame(await second.receive_from())
        assert reply["code"] == "too_many_connections" and reply["id"] == 9
        assert await second.receive_output(timeout=2) == {"type": "websocket.close", "code": 4001}
        await second.disconnect()
    async with connected() as again:
        assert (await again.ask(auth_op(key)))["type"] == "auth"


@scenario
async def test_subscribe_unsubscribe_public(market):
    s = market.symbol
    async with connected() as ws:
        reply = await ws.ask({"op": "subscribe", "id": "s", "channels": [f"book:{s}", f"trades:{s}", f"ticker:{s}"]})
        assert reply == {"type": "subscribed", "id": "s", "channels": [
            {"channel": f"book:{s}", "sequence": 0}, {"channel": f"trades:{s}", "sequence": None},
            {"channel": f"ticker:{s}", "sequence": None}]}
        snapshot = await ws.recv()
        assert snapshot == {"channel": f"book:{s}", "type": "snapshot", "market": s, "sequence": 0, "bids": [], "asks": [],
                            "checksum": 0}  # CRC32 of the empty string
        ticker = await ws.recv()
        assert ticker["channel"] == f"ticker:{s}" and ticker["type"] == "ticker" and ticker["data"]["market"] == s
        # Subscribing again is a no-op; unsubscribing lists what was removed.
        assert (await ws.ask({"op": "subscribe", "id": 2, "channels": [f"book:{s}"]}))["channels"] == []
        reply = await ws.ask({"op": "unsubscribe", "id": 3, "channels": [f"book:{s}", f"trades:{s}"]})
        assert reply == {"type": "unsubscribed", "id": 3, "channels": [f"book:{s}", f"trades:{s}"]}
        assert await ws.nothing()


@pytest.mark.parametrize("since, code", [
    (-1, "validation_error"), ("3", "validation_error"), (True, "validation_error"),
    ({"orders": 0, "trades": 0}, "validation_error"), (5, "validation_error"),  # ahead of the stream
])
@scenario
async def test_since_refusals(since, code):
    key = await make_key()
    async with connected() as ws:
        await ws.ask(auth_op(key))
        reply = await ws.ask({"op": "subscribe", "id": 1, "channels": ["orders"], "since": since})
        assert reply["code"] == code, reply
        await still_alive(ws)


@scenario
async def test_since_needs_a_private_channel(market):
    key = await make_key()
    async with connected() as ws:
        await ws.ask(auth_op(key))
        reply = await ws.ask({"op": "subscribe", "id": 1, "channels": [f"book:{market.symbol}"], "since": 0})
        assert reply["code"] == "validation_error"

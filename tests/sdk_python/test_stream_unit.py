"""The Stream against a scripted WebSocket server: a book gap (and a bad checksum) makes it
unsubscribe and subscribe again for a fresh snapshot; a duplicated private event is dropped
and a private gap is filled by resubscribing with ``since``."""
import asyncio
import json

from bourse import Stream, book_checksum
from websockets.asyncio.server import serve


def test_book_gap_and_private_gap_resubscribe():
    received = []

    async def server(ws):
        async for raw in ws:
            message = json.loads(raw)
            received.append(message)
            reply_id = message.get("id")
            if message["op"] == "unsubscribe":
                await ws.send(json.dumps({"type": "unsubscribed", "id": reply_id, "channels": message["channels"]}))
            elif message["op"] == "subscribe" and len([m for m in received if m["op"] == "subscribe"]) == 1:
                await ws.send(json.dumps({"type": "subscribed", "id": reply_id, "channels": [
                    {"channel": "book:BTC-USD", "sequence": 1}, {"channel": "orders", "sequence": 10}]}))
                snap = {"channel": "book:BTC-USD", "type": "snapshot", "market": "BTC-USD", "sequence": 1,
                        "bids": [["1.00", "1"]], "asks": []}
                await ws.send(json.dumps(snap))
                await ws.send(json.dumps({**snap, "type": "update", "sequence": 3, "bids": [["2.00", "1"]]}))
                order = {"channel": "orders", "type": "order", "data": {"order_id": "1"}}
                await ws.send(json.dumps({**order, "sequence": 11}))
                await ws.send(json.dumps({**order, "sequence": 11}))  # duplicate: dropped
                await ws.send(json.dumps({**order, "sequence": 13}))  # gap: resubscribe since 11
            elif message["op"] == "subscribe" and message["channels"] == ["book:BTC-USD"]:
                await ws.send(json.dumps({"type": "subscribed", "id": reply_id,
                                          "channels": [{"channel": "book:BTC-USD", "sequence": 5}]}))
                bids, asks = [["2.00", "1"], ["1.00", "1"]], [["3.00", "4"]]
                await ws.send(json.dumps({"channel": "book:BTC-USD", "type": "snapshot", "market": "BTC-USD",
                                          "sequence": 5, "bids": bids, "asks": asks,
                                          "checksum": book_checksum(bids, asks)}))
            elif message["op"] == "subscribe" and message["channels"] == ["orders"]:
                await ws.send(json.dumps({"type": "subscribed", "id": reply_id,
                                          "channels": [{"channel": "orders", "sequence": 13}]}))
                for seq in (12, 13):
                    await ws.send(json.dumps({"channel": "orders", "type": "order", "sequence": seq,
                                              "data": {"order_id": str(seq)}}))

    async def scenario():
        async with serve(server, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with Stream(f"http://127.0.0.1:{port}") as stream:
                await stream.subscribe(["book:BTC-USD", "orders"])
                frames = [await stream.next(timeout=5) for _ in range(5)]
                return frames, stream.book("BTC-USD"), dict(stream.last_sequence)

    frames, book, last = asyncio.run(scenario())
    assert [(f["channel"], f["type"], f["sequence"]) for f in frames] == [
        ("book:BTC-USD", "snapshot", 1), ("orders", "order", 11), ("book:BTC-USD", "snapshot", 5),
        ("orders", "order", 12), ("orders", "order", 13)]
    assert (book.sequence, book.bids(), book.asks()) == (5, [["2.00", "1"], ["1.00", "1"]], [["3.00", "4"]])
    assert last == {"orders": 13}
    ops = [(m["op"], m["channels"], m.get("since")) for m in received]
    assert ("unsubscribe", ["book:BTC-USD"], None) in ops and ("subscribe", ["book:BTC-USD"], None) in ops
    assert ("subscribe", ["orders"], {"orders": 11}) in ops

"""The Python SDK against a live Bourse: REST (sync and async) and WebSocket scenarios —
place, cross, cancel, refusals as BourseError, pagination, RateLimit, clock offset; the local
book equal to REST at the same sequence; a resume after a forced disconnect with no gap or
duplicate on the private streams."""
import asyncio

import pytest
from bourse import AsyncClient, BourseError, Client, Stream

from tests.sdk.helpers import create_trader

pytestmark = [pytest.mark.slow]


def _client(url, trader):
    if "secret" in trader:
        return Client(url, trader["key_id"], secret=trader["secret"])
    return Client(url, trader["key_id"], private_key=trader["private_key"])


def test_rest_scenario(bourse_url):
    from trading.models import Order

    maker = _client(bourse_url, create_trader("py-maker", "BTC=1", "USD=1000"))
    taker = _client(bourse_url, create_trader("py-taker", "USD=10000", scheme="ed25519"))
    assert taker.scheme == "ed25519"
    assert [m.symbol for m in maker.iter_markets()] == ["BTC-USD"]
    market = maker.market("BTC-USD")
    assert market.status == "open" and market.tick_size.startswith("0.01")
    assert abs(maker.sync_clock()) < 5000

    rested = maker.place_order("BTC-USD", "sell", "limit", quantity="0.5", price="100.00", client_order_id="py-ask-1")
    assert rested.status == "open" and rested.client_order_id == "py-ask-1"
    again = maker.place_order("BTC-USD", "sell", "limit", quantity="0.5", price="100.00", client_order_id="py-ask-1")
    assert again.order_id == rested.order_id
    assert Order.objects.filter(client_order_id="py-ask-1").count() == 1

    bought = taker.place_order("BTC-USD", "buy", "limit", quantity="0.2", price="100.00", time_in_force="ioc")
    assert (bought.status, bought.filled_quantity) == ("filled", "0.20000000")
    assert bought.average_price is not None and bought.average_price.startswith("100.00")
    book = maker.book("BTC-USD")
    assert [[float(p), float(q)] for p, q in book.asks] == [[100.0, 0.3]] and book.bids == []

    extra = maker.place_order("BTC-USD", "sell", "limit", quantity="0.1", price="101.00")
    assert maker.cancel_order(extra.order_id).status == "cancelled"
    with pytest.raises(BourseError) as closed:
        maker.cancel_order(extra.order_id)
    assert (closed.value.status, closed.value.code) == (409, "order_closed") and closed.value.request_id

    with pytest.raises(BourseError) as tick:
        maker.place_order("BTC-USD", "sell", "limit", quantity="0.1", price="100.001")
    assert (tick.value.status, tick.value.code, tick.value.fields) == (400, "validation_error", ["price"])
    with pytest.raises(BourseError) as broke:
        taker.place_order("BTC-USD", "buy", "limit", quantity="1000", price="100.00")
    assert (broke.value.status, broke.value.code) == (422, "insufficient_balance")
    with pytest.raises(BourseError) as missing:
        maker.order("999999999")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(BourseError) as unknown:
        maker.place_order("NOPE-USD", "buy", "limit", quantity="1", price="1.00")
    assert unknown.value.code == "market_not_found"
    bad = Client(bourse_url, maker.key, secret="not-the-secret")
    with pytest.raises(BourseError) as denied:
        bad.account()
    assert (denied.value.status, denied.value.code) == (401, "invalid_credentials")
    with pytest.raises(TypeError):
        maker.place_order("BTC-USD", "buy", "limit", quantity=0.1, price="1.00")  # type: ignore[arg-type]

    assert maker.order_by_client_id("py-ask-1").order_id == rested.order_id
    taker_fills = list(taker.iter_fills(market="BTC-USD"))
    assert [(f.order_id, f.liquidity, f.quantity) for f in taker_fills] == [(bought.order_id, "taker", "0.20000000")]
    maker_fills = list(maker.iter_fills(order_id=rested.order_id))
    assert [f.liquidity for f in maker_fills] == ["maker"]
    # One order per page: every maker order, each exactly once.
    paged = [o.order_id for o in maker.iter_orders(status="all", limit=1)]
    assert sorted(paged) == sorted({rested.order_id, extra.order_id}) and len(paged) == 2
    assert [p.net_quantity for p in taker.positions()] == ["0.20000000"]
    balances = {b.asset: b for b in taker.iter_balances()}
    assert balances["BTC"].available == "0.20000000"
    kinds = {e.kind for e in maker.iter_ledger(limit=2)}
    assert {"deposit", "trade"} <= kinds
    assert maker.rate_limit is not None and maker.rate_limit.remaining("key") is not None
    assert "key" in {p.name for p in maker.rate_limit.policies}

    # A client whose clock is 30 s slow signs with the offset /time measured.
    skewed = _client(bourse_url, {"key_id": maker.key, "secret": maker._signer._key.decode()})  # type: ignore[union-attr]
    skewed.clock_offset_ms = -30_000
    assert skewed.account().account_id  # refused once (timestamp_out_of_window), adopted the server clock, retried
    assert abs(skewed.clock_offset_ms) < 5000

    assert maker.cancel_all_orders("BTC-USD").cancelled == [rested.order_id]
    ticker = maker.ticker("BTC-USD")
    assert ticker.last_price is not None and ticker.last_price.startswith("100")
    assert [t.quantity for t in maker.iter_trades("BTC-USD")] == ["0.20000000"]
    assert maker.time().epoch_ms > 0


def test_async_client(bourse_url):
    trader = create_trader("py-async", "USD=100", "BTC=1")

    async def scenario():
        async with AsyncClient(bourse_url, trader["key_id"], secret=trader["secret"]) as client:
            await client.sync_clock()
            account = await client.account()
            first = await client.place_order("BTC-USD", "sell", "limit", quantity="0.1", price="200.00",
                                             client_order_id="py-async-1")
            second = await client.place_order("BTC-USD", "sell", "limit", quantity="0.1", price="201.00")
            listed = [o.order_id async for o in client.iter_orders(market="BTC-USD", status="open", limit=1)]
            cancelled = await client.cancel_all_orders()
            assets = [b.asset async for b in client.iter_balances()]
            return account, first, second, listed, cancelled, assets

    account, first, second, listed, cancelled, assets = asyncio.run(scenario())
    assert account.account_id == trader["account_id"] and account.api_key.scopes == ["read", "trade"]
    assert sorted(listed) == sorted([first.order_id, second.order_id])
    assert sorted(cancelled.cancelled) == sorted(listed)
    assert {"BTC", "USD"} <= set(assets)


def test_stream_book_and_resume(bourse_url):
    maker_creds = create_trader("ws-py-maker", "BTC=2")
    taker_creds = create_trader("ws-py-taker", "USD=10000", scheme="ed25519")
    maker = _client(bourse_url, maker_creds)
    taker = _client(bourse_url, taker_creds)

    async def until(stream, predicate, timeout=20.0):
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(seen):
            seen.append(await stream.next(timeout=max(0.1, deadline - loop.time())))
        return seen

    def fills(frames):
        return [f for f in frames if f.get("channel") == "fills"]

    async def scenario():
        async with Stream(bourse_url, taker_creds["key_id"], private_key=taker_creds["private_key"]) as stream:
            assert stream.account_id == taker_creds["account_id"]
            reply = await stream.subscribe(["book:BTC-USD", "orders", "fills"])
            assert [c["channel"] for c in reply["channels"]] == ["book:BTC-USD", "orders", "fills"]
            assert (await stream.ping())["type"] == "pong"
            # Blocking REST calls from the loop's thread: the stream reads their events afterwards.
            maker.place_order("BTC-USD", "sell", "limit", quantity="1", price="100.00")
            first = taker.place_order("BTC-USD", "buy", "market", quote_quantity="10.00")
            frames = await until(stream, lambda seen: len(fills(seen)) >= 1)
            book = stream.book("BTC-USD")
            rest = maker.book("BTC-USD", depth=1000)
            assert rest.sequence == book.sequence and (rest.bids, rest.asks) == (book.bids(), book.asks())

            # Forced disconnect; two more fills happen while the connection is down (the loop
            # is blocked in the synchronous calls, so the stream cannot reconnect before them).
            stream.connection.transport.abort()
            missed = [taker.place_order("BTC-USD", "buy", "market", quote_quantity="10.00") for _ in range(2)]
            frames += await until(stream, lambda seen: len(fills(frames + seen)) >= 3)
            await asyncio.sleep(0.5)  # anything duplicated would arrive now
            while True:
                try:
                    frames.append(await stream.next(timeout=0.2))
                except TimeoutError:
                    break
            rest = maker.book("BTC-USD", depth=1000)
            book = stream.book("BTC-USD")
            return first, missed, frames, stream.reconnects, rest, (book.sequence, book.bids(), book.asks())

    first, missed, frames, reconnects, rest, book = asyncio.run(scenario())
    assert reconnects == 1
    fill_frames = fills(frames)
    assert [f["data"]["order_id"] for f in fill_frames] == [first.order_id] + [o.order_id for o in missed]
    sequences = [f["sequence"] for f in fill_frames]
    assert sequences == list(range(sequences[0], sequences[0] + 3))
    order_sequences = [f["sequence"] for f in frames if f.get("channel") == "orders"]
    assert order_sequences == list(range(order_sequences[0], order_sequences[0] + len(order_sequences)))
    assert {f["data"]["order_id"] for f in frames if f.get("channel") == "orders" and f["data"]["status"] == "filled"} \
        == {first.order_id} | {o.order_id for o in missed}
    assert (rest.sequence, rest.bids, rest.asks) == book
    assert [[float(p), float(q)] for p, q in rest.asks] == [[100.0, 0.7]]


@pytest.mark.parametrize("scheme", ["hmac", "ed25519"])
def test_docs_python_sdk_quickstart(bourse_url, scheme):
    import os
    import subprocess
    import sys
    from pathlib import Path

    credentials = create_trader(f"quick-py-{scheme}", "USD=10000", "BTC=0.5", scheme=scheme)
    env = {k: v for k, v in os.environ.items() if k not in ("BOURSE_SECRET", "BOURSE_PRIVATE_KEY")}
    env.update(BOURSE_URL=bourse_url, BOURSE_KEY_ID=credentials["key_id"])
    env["BOURSE_SECRET" if scheme == "hmac" else "BOURSE_PRIVATE_KEY"] = credentials.get("secret") or credentials["private_key"]
    script = Path(__file__).resolve().parents[2] / "docs" / "examples" / "quickstart_sdk.py"
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"account {credentials['account_id']} (quick-py-{scheme}), key scopes read,trade" in lines
    assert any(line.startswith("USD") and "10000.00" in line for line in lines), result.stdout
    assert sum(line.startswith("ledger ") and " deposit " in line for line in lines) == 2, result.stdout

    env["BOURSE_KEY_ID"] = "bk_unknownunknownunknown0"
    refused = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "401 invalid_credentials" in refused.stderr, refused.stderr

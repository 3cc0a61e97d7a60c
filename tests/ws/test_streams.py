"""The streams: book consistency, trades and ticker, private events (privacy, sequencing,
balances) and resume with ``since``. The engine is stepped by hand (``runner``); its commit
announces the batch to the relay exactly as in production."""
import random
from decimal import Decimal

import pytest
from django.test import Client as HttpClient

from tests.factories import AccountFactory
from tests.signed import SignedClient
from tests.support import fund
from tests.ws.helpers import auth_op, connected, db, make_key, scenario
from trading.models import AccountSequence, OutboxEvent
from trading.outbox import selectors as outbox_selectors
from trading.services.orders import order_cancel, order_submit

pytestmark = pytest.mark.django_db(transaction=True)


def trader(**deposits):
    account = AccountFactory()
    fund(account, **(deposits or {"USD": "1000000", "BTC": "1000"}))
    return account


def submit(account, market, side, price, quantity, **more):
    return order_submit(account=account, market=market.symbol, side=side, type="limit",
                        price=Decimal(price), quantity=Decimal(quantity), **more).order


def rest_book(symbol):
    return HttpClient().get(f"/api/v1/markets/{symbol}/book", {"depth": 1000}).json()


def apply(book, update):
    for side in ("bids", "asks"):
        for price, total in update[side]:
            if total == "0":
                book[side].pop(price, None)
            else:
                book[side][price] = total


def random_flow(rng, market, accounts, count):
    """Limit orders around 100 on both sides (some crossing), IOC and market orders, cancels."""
    from trading.models import Order

    for _ in range(count):
        account = rng.choice(accounts)
        roll = rng.random()
        if roll < 0.15:
            live = list(Order.objects.filter(account=account, status__in=Order.LIVE_STATUSES).values_list("pk", flat=True))
            if live:
                order_cancel(account=account, order_id=rng.choice(live))
                continue
        side = rng.choice(["buy", "sell"])
        quantity = Decimal(rng.randint(2, 50)) / 100
        if roll > 0.92:
            size = {"quote_quantity": quantity * 100} if side == "buy" else {"quantity": quantity}
            order_submit(account=account, market=market.symbol, side=side, type="market", **size)
            continue
        offset = rng.randint(-6, 10) * Decimal("0.25")
        price = Decimal(100) - offset if side == "buy" else Decimal(100) + offset
        submit(account, market, side, str(price), str(quantity), time_in_force=rng.choice(["gtc", "gtc", "ioc"]))


@scenario
async def test_book_from_snapshot_plus_updates_equals_rest_book(market, runner):
    accounts = [await db(trader)() for _ in range(4)]
    rng = random.Random(6)
    await db(random_flow)(rng, market, accounts, 25)
    await db(runner.step)()
    async with connected() as ws:
        await ws.ask({"op": "subscribe", "channels": [f"book:{market.symbol}"]})
        snapshot = await ws.recv()
        assert snapshot["type"] == "snapshot" and snapshot["sequence"] > 0
        book = {"bids": dict(snapshot["bids"]), "asks": dict(snapshot["asks"])}
        assert snapshot["bids"] == (await db(rest_book)(market.symbol))["bids"]
        sequence = snapshot["sequence"]
        for _ in range(8):
            await db(random_flow)(rng, market, accounts, 20)
            await db(runner.step)()
        rest = await db(rest_book)(market.symbol)
        assert rest["sequence"] > sequence + 20
        while sequence < rest["sequence"]:
            update = await ws.recv()
            assert update["type"] == "update" and update["channel"] == f"book:{market.symbol}"
            assert update["sequence"] == sequence + 1  # exactly +1, no gaps, no repeats
            apply(book, update)
            sequence = update["sequence"]
        assert await ws.nothing()
    bids = sorted(book["bids"].items(), key=lambda level: Decimal(level[0]), reverse=True)
    asks = sorted(book["asks"].items(), key=lambda level: Decimal(level[0]))
    assert [list(level) for level in bids] == rest["bids"]
    assert [list(level) for level in asks] == rest["asks"]


@scenario
async def test_removed_level_is_exactly_zero_and_trades_and_ticker_stream(market, runner, settings):
    settings.BOURSE_WS_TICKER_INTERVAL_S = 0
    maker, taker = await db(trader)(), await db(trader)()
    s = market.symbol
    async with connected() as ws:
        await ws.ask({"op": "subscribe", "channels": [f"book:{s}", f"trades:{s}", f"ticker:{s}"]})
        assert (await ws.recv())["type"] == "snapshot"
        assert (await ws.recv())["data"]["last_price"] is None
        await db(submit)(maker, market, "sell", "101.00", "0.5")
        await db(runner.step)()
        update = await ws.until(lambda f: f["type"] == "update")
        assert update[-1]["asks"] == [["101.000000", "0.50000000"]]
        await db(submit)(taker, market, "buy", "101.00", "0.5")
        await db(runner.step)()
        frames = await ws.until(lambda f: f["type"] == "ticker" and f["data"]["last_price"] is not None)
        by_type = {f["type"]: f for f in frames}
        assert by_type["update"]["asks"] == [["101.000000", "0"]]
        trade = by_type["trade"]
        assert trade["channel"] == f"trades:{s}"
        rest_trade = (await db(lambda: HttpClient().get(f"/api/v1/markets/{s}/trades").json())())["results"][0]
        assert trade["data"] == rest_trade
        assert by_type["ticker"]["data"]["last_price"] == "101.000000"


async def authed(ws, key, channels, **more):
    assert (await ws.ask(auth_op(key)))["type"] == "auth"
    reply = await ws.ask({"op": "subscribe", "channels": channels, **more})
    assert reply["type"] == "subscribed", reply
    return reply


@scenario
async def test_private_events_are_sequenced_and_match_the_rest_state(market, runner):
    key = await make_key()
    account = key.account
    await db(fund)(account, USD="10000", BTC="10")
    counterparty = await db(trader)()
    async with connected() as ws:
        await authed(ws, key, ["orders", "fills", "balances"])
        order = await db(submit)(account, market, "buy", "100.00", "1", client_order_id="mine-1")
        balance = await ws.recv()
        assert balance["channel"] == "balances" and balance["type"] == "balance" and balance["sequence"] == 1
        assert balance["data"]["asset"] == "USD" and balance["data"]["locked"] == "100.200000"  # with taker fee
        await db(submit)(counterparty, market, "sell", "100.00", "0.4")
        await db(runner.step)()
        frames = await ws.until(lambda f: f["channel"] == "fills")
        frames += await ws.until(lambda f: f["channel"] == "balances" and f["data"]["asset"] == "USD")
        orders = [f for f in frames if f["channel"] == "orders"]
        fills = [f for f in frames if f["channel"] == "fills"]
        assert [f["sequence"] for f in orders] == [1] and orders[0]["data"]["order_id"] == str(order.pk)
        assert orders[0]["data"]["status"] == "partially_filled"
        assert [f["sequence"] for f in fills] == [1] and fills[0]["data"]["client_order_id"] == "mine-1"
        # Settlement (eager in tests) published both assets' balances, as REST shows them.
        rest = await db(lambda: {b["asset"]: b for b in SignedClient(key).get("/api/v1/balances").json()["results"]})()
        balances = {f["data"]["asset"]: f for f in frames if f["channel"] == "balances"}
        assert [f["sequence"] for f in frames if f["channel"] == "balances"] == [2, 3]
        for asset in ("USD", "BTC"):
            assert {k: balances[asset]["data"][k] for k in ("total", "available", "locked")} == \
                {k: rest[asset][k] for k in ("total", "available", "locked")}


@scenario
async def test_privacy_another_account_never_receives_them(market, runner):
    alice, bob = await make_key(), await make_key()
    await db(fund)(alice.account, USD="10000", BTC="10")
    await db(fund)(bob.account, USD="10000", BTC="10")
    carol = await db(trader)()
    async with connected() as a, connected() as b:
        await authed(a, alice, ["orders", "fills", "balances"])
        await authed(b, bob, ["orders", "fills", "balances", f"trades:{market.symbol}"])
        for _i in range(3):
            await db(submit)(alice.account, market, "buy", "100.00", "0.1")
            await db(submit)(carol, market, "sell", "100.00", "0.1")
        await db(runner.step)()
        received = await a.until(lambda f: f["channel"] == "fills" and f["sequence"] == 3)
        assert {f["channel"] for f in received} >= {"orders", "fills", "balances"}
        alice_orders = {f["data"]["order_id"] for f in received if f["channel"] == "orders"}
        assert alice_orders <= set(await db(lambda: [str(pk) for pk in alice.account.orders.values_list("pk", flat=True)])())
        # Bob sees the public trades and nothing private at all.
        frames = []
        while not await b.nothing(0.5):
            frames.append(await b.recv())
        assert frames and {f["channel"] for f in frames} == {f"trades:{market.symbol}"}
        # Naming another account's stream is impossible: private channels take no account.
        reply = await b.ask({"op": "subscribe", "channels": [f"orders:{alice.account_id}"]})
        assert reply["code"] == "unknown_channel"


@scenario
async def test_resume_with_since_replays_exactly_the_missed_events(market, runner):
    key = await make_key()
    await db(fund)(key.account, USD="100000", BTC="100")
    other = await db(trader)()
    channels = ["orders", "fills", "balances"]
    async with connected() as ws:
        await authed(ws, key, channels)
        await db(submit)(key.account, market, "sell", "100.00", "1")
        await db(submit)(other, market, "buy", "100.00", "0.25")
        await db(runner.step)()
        seen = await ws.until(lambda f: f["channel"] == "fills")
        seen += [await ws.recv() for _ in range(2)]  # settlement's two balance events
        last = {c: max([0, *(f["sequence"] for f in seen if f["channel"] == c)]) for c in channels}
        assert last == {"orders": 1, "fills": 1, "balances": 3}
    # Offline: more trades, cancels, new orders.
    for _ in range(3):
        await db(submit)(other, market, "buy", "100.00", "0.1")
    await db(submit)(key.account, market, "buy", "90.00", "1")
    await db(runner.step)()
    expected = await db(lambda: {
        c: [(e["sequence"], e["payload"]) for e in outbox_selectors.private_events(key.account.pk, c, last[c])]
        for c in channels})()
    assert all(expected.values())
    async with connected() as ws:
        reply = await authed(ws, key, channels, since=last)
        after = {c["channel"]: c["sequence"] for c in reply["channels"]}
        assert after == {c: expected[c][-1][0] for c in channels}
        got = {c: [] for c in channels}
        total = sum(len(v) for v in expected.values())
        for _ in range(total):
            frame = await ws.recv()
            got[frame["channel"]].append((frame["sequence"], frame["data"]))
        assert got == {c: [tuple(row) for row in expected[c]] for c in channels}
        assert await ws.nothing()
        # And live events continue the same sequence.
        await db(submit)(other, market, "buy", "100.00", "0.05")
        await db(runner.step)()
        frame = await ws.until(lambda f: f["channel"] == "orders")
        assert frame[-1]["sequence"] == after["orders"] + 1


@scenario
async def test_since_older_than_retention_asks_for_a_rest_resync(market, runner):
    from datetime import timedelta

    from django.utils import timezone

    from trading.outbox.services import outbox_prune

    key = await make_key()
    await db(fund)(key.account, USD="1000")
    await db(submit)(key.account, market, "buy", "100.00", "1")
    await db(submit)(key.account, market, "buy", "99.00", "1")
    assert await db(outbox_prune)(timezone.now() + timedelta(days=30)) > 0
    async with connected() as ws:
        await ws.ask(auth_op(key))
        reply = await ws.ask({"op": "subscribe", "id": 4, "channels": ["balances"], "since": 0})
        assert reply["code"] == "resync_required" and reply["id"] == 4 and reply["last"] == 2
        assert "REST" in reply["message"]
        reply = await ws.ask({"op": "subscribe", "channels": ["balances"], "since": 2})  # up to date: fine
        assert reply["type"] == "subscribed" and reply["channels"] == [{"channel": "balances", "sequence": 2}]


@scenario
async def test_a_lost_announcement_is_recovered_by_the_poll(market, runner, settings, monkeypatch):
    from trading.outbox import signal

    settings.BOURSE_WS_POLL_S = 0.2
    maker = await db(trader)()
    async with connected() as ws:
        await ws.ask({"op": "subscribe", "channels": [f"book:{market.symbol}"]})
        snapshot = await ws.recv()
        monkeypatch.setattr(signal, "announce", lambda ids, wake=None: None)
        for price in ("101.00", "102.00", "103.00"):
            await db(submit)(maker, market, "sell", price, "0.1")
        await db(runner.step)()
        updates = [await ws.recv(timeout=3) for _ in range(3)]
        assert [u["sequence"] for u in updates] == [snapshot["sequence"] + i for i in (1, 2, 3)]


def test_account_sequences_are_gapless_per_channel(market, runner):
    accounts = [trader() for _ in range(3)]
    rng = random.Random(3)
    for _ in range(4):
        random_flow(rng, market, accounts, 20)
        runner.step()
    for account in accounts:
        for channel in ("orders", "fills", "balances"):
            rows = OutboxEvent.objects.filter(account=account, channel=channel).order_by("id")
            sequences = [e["sequence"] for e in outbox_selectors.expand(rows.values("channel", "sequence", "payload"))]
            assert sequences == list(range(1, len(sequences) + 1))
            last = AccountSequence.objects.filter(account=account, channel=channel).values_list("last", flat=True)
            assert list(last) == ([len(sequences)] if sequences else [])

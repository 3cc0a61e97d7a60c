"""Market data against a real daphne: every ``book:`` frame's ``checksum`` equals the one an
independent implementation (below: its own CRC-32 and book, sorted by ``Decimal``) computes
from the snapshot and the updates applied so far, over a burst of crossing orders that sweep
levels, empty sides and move the top 25; trades arrive in ``trade_id`` order (+1 each);
``candles:`` frames follow the trades."""
import json
import random
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from tests.factories import AccountFactory
from tests.support import daphne_server, fund
from tests.ws.helpers import checked_frame
from trading.models import Trade
from trading.services.orders import order_cancel, order_submit

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def crc32_reference(data: bytes) -> int:
    """Bitwise CRC-32 (reflected, polynomial 0xEDB88320): not the code under test."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class ReferenceBook:
    def __init__(self, snapshot):
        self.sides = {"bids": dict(map(tuple, snapshot["bids"])), "asks": dict(map(tuple, snapshot["asks"]))}

    def apply(self, update):
        for side in ("bids", "asks"):
            for price, quantity in update[side]:
                if Decimal(quantity) == 0:
                    self.sides[side].pop(price, None)
                else:
                    self.sides[side][price] = quantity

    def checksum(self) -> int:
        bids = sorted(self.sides["bids"].items(), key=lambda level: Decimal(level[0]), reverse=True)[:25]
        asks = sorted(self.sides["asks"].items(), key=lambda level: Decimal(level[0]))[:25]
        fields = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                fields += bids[i]
            if i < len(asks):
                fields += asks[i]
        return crc32_reference(":".join(fields).encode())


def recv(ws, timeout=10.0) -> dict:
    return checked_frame(ws.recv(timeout=timeout))


def test_checksum_trade_ids_and_candles_over_a_crossing_burst(market, runner):
    rng = random.Random(18)
    makers = [AccountFactory() for _ in range(2)]
    takers = [AccountFactory() for _ in range(2)]
    for account in (*makers, *takers):
        fund(account, USD="1000000", BTC="1000")
    symbol = market.symbol

    def limit(account, side, price, quantity):
        return order_submit(account=account, market=symbol, side=side, type="limit",
                            price=Decimal(price), quantity=Decimal(quantity)).order

    # given a book deeper than 25 levels on both sides (some of it resting before we subscribe)
    resting = []
    for i in range(30):
        resting.append(limit(makers[0], "buy", f"{99 - i * 0.25:.2f}", f"{0.1 + i / 100:.4f}"))
        resting.append(limit(makers[1], "sell", f"{101 + i * 0.25:.2f}", f"{0.1 + i / 100:.4f}"))
    runner.step()
    with daphne_server() as server, connect(server.ws, open_timeout=10) as ws:
        ws.send(json.dumps({"op": "subscribe", "id": 1,
                            "channels": [f"book:{symbol}", f"trades:{symbol}", f"candles:{symbol}:1m"]}))
        assert recv(ws)["type"] == "subscribed"
        snapshot = recv(ws)
        assert snapshot["type"] == "snapshot"
        book = ReferenceBook(snapshot)
        assert snapshot["checksum"] == book.checksum()

        # when a burst crosses: sweeps of several levels, new levels inside the top 25 and
        # beyond it, cancels, market orders that empty a side's top
        for _round in range(6):
            for _ in range(8):
                taker = rng.choice(takers)
                side = rng.choice(["buy", "sell"])
                kind = rng.random()
                if kind < 0.4:  # crossing limit, sweeping a few levels
                    price = f"{(103 + rng.random() * 3) if side == 'buy' else (97 - rng.random() * 3):.2f}"
                    limit(taker, side, price, f"{0.05 + rng.random() * 0.5:.4f}")
                elif kind < 0.7:  # a new level somewhere in or behind the top 25
                    price = f"{(99.5 - rng.random() * 12) if side == 'buy' else (100.5 + rng.random() * 12):.2f}"
                    limit(rng.choice(makers), side, price, f"{0.01 + rng.random() * 0.2:.4f}")
                elif kind < 0.85:
                    amount = ({"quote_quantity": Decimal(f"{10 + rng.random() * 40:.2f}")} if side == "buy"
                              else {"quantity": Decimal(f"{0.1 + rng.random() * 0.3:.4f}")})
                    order_submit(account=taker, market=symbol, side=side, type="market", **amount)
                else:
                    live = [o for o in resting if o.status in ("open", "partially_filled")]
                    if live:
                        victim = rng.choice(live)
                        order_cancel(account=victim.account, order_id=victim.pk, wait=0)
            runner.step()
            for order in resting:
                order.refresh_from_db()

        # then every update's checksum matches the independent book's, in sequence
        trades = Trade.objects.filter(market=market).count()
        assert trades > 10
        got_trades, candles, updates = [], [], 0
        sequence = snapshot["sequence"]
        final_sequence = runner.book.sequence
        candle_after_last_trade = False
        while sequence < final_sequence or len(got_trades) < trades or not candle_after_last_trade:
            frame = recv(ws)
            if frame["channel"].startswith("book:"):
                assert frame["sequence"] == sequence + 1
                sequence = frame["sequence"]
                book.apply(frame)
                assert frame["checksum"] == book.checksum(), f"checksum differs at sequence {sequence}"
                updates += 1
            elif frame["channel"].startswith("trades:"):
                got_trades.append(frame["data"])
                candle_after_last_trade = False
            else:
                assert frame["channel"] == f"candles:{symbol}:1m" and frame["type"] == "candle"
                candles.append(frame["data"])
                candle_after_last_trade = len(got_trades) == trades
        assert updates >= 40
        assert [int(t["trade_id"]) for t in got_trades] == list(range(1, trades + 1))
        # and the last candle counts every trade of its minute and closes at the last price
        last_candle = candles[-1]
        minute_trades = [t for t in got_trades if t["created_at"][:16] == last_candle["open_time"][:16]]
        assert last_candle["trades"] == len(minute_trades)
        assert last_candle["close"] == got_trades[-1]["price"]
        assert Decimal(last_candle["volume"]) == sum(Decimal(t["quantity"]) for t in minute_trades)

"""A ccxt script against Bourse, written only with ccxt's unified API (docs/quickstart.md).

    pip install './sdk/python[ccxt]'
    export BOURSE_URL=http://127.0.0.1:8000
    export BOURSE_KEY_ID=bk_… BOURSE_SECRET=…                # you
    export BOURSE_MAKER_KEY_ID=bk_… BOURSE_MAKER_SECRET=…    # a second trader, on the other side
    python docs/examples/ccxt_bourse.py

It loads the markets, reads the book, places and cancels an order, buys from the second
trader's offer, reads the balance and its own trades, then watches the order book over the
WebSocket until it equals fetch_order_book."""
import asyncio
import os
import time

import bourse.ccxt
import bourse.ccxt.pro
import ccxt

SYMBOL = "BTC/USD"
PRICE = float(os.environ.get("BOURSE_DEMO_PRICE", "100.00"))


def config(key_var: str, secret_var: str) -> dict:
    return {"apiKey": os.environ[key_var], "secret": os.environ[secret_var],
            "urls": {"api": os.environ.get("BOURSE_URL", "http://127.0.0.1:8000")},
            "timeout": 30000}  # ms; an order waits for the matching engine's answer (up to BOURSE_ENGINE_WAIT_S)


def main() -> None:
    exchange = bourse.ccxt.bourse(config("BOURSE_KEY_ID", "BOURSE_SECRET"))
    maker = bourse.ccxt.bourse(config("BOURSE_MAKER_KEY_ID", "BOURSE_MAKER_SECRET"))
    exchange.check_required_credentials()

    markets = exchange.load_markets()
    market = markets[SYMBOL]
    print(f"markets: {sorted(markets)}")
    print(f"{SYMBOL}: id {market['id']} price tick {market['precision']['price']} amount step "
          f"{market['precision']['amount']} min cost {market['limits']['cost']['min']} "
          f"taker fee {market['taker']}")
    print(f"server time offset: {exchange.fetch_time() - exchange.milliseconds()} ms")

    book = exchange.fetch_order_book(SYMBOL)
    print(f"order book at sequence {book['nonce']}: {len(book['bids'])} bids, {len(book['asks'])} asks")

    # A resting bid far below the market, seen among the open orders, then cancelled.
    bid = exchange.create_order(SYMBOL, "limit", "buy", 0.05, PRICE / 2, {"clientOrderId": f"ccxt-{int(time.time())}"})
    print(f"created {bid['id']} {bid['side']} {bid['amount']} @ {bid['price']}: {bid['status']} "
          f"(clientOrderId {bid['clientOrderId']})")
    print(f"open orders: {[o['id'] for o in exchange.fetch_open_orders(SYMBOL)]}")
    cancelled = exchange.cancel_order(bid["id"], SYMBOL)
    print(f"cancelled {cancelled['id']}: {cancelled['status']}")
    try:
        exchange.cancel_order(bid["id"], SYMBOL)
    except ccxt.OrderNotFound as error:
        print(f"cancelling it again: {type(error).__name__}")

    # The second trader offers; we buy part of it, as a taker.
    offer = maker.create_order(SYMBOL, "limit", "sell", 0.05, PRICE)
    bought = exchange.create_order(SYMBOL, "limit", "buy", 0.02, PRICE, {"timeInForce": "IOC"})
    print(f"bought {bought['filled']} @ {bought['average']}: {bought['status']}")
    try:  # more BTC than the account holds, within the market's bounds (limits.amount.max)
        exchange.create_order(SYMBOL, "limit", "sell", 1_000, PRICE)
    except ccxt.InsufficientFunds as error:
        print(f"a too large order: {type(error).__name__}")

    balance = exchange.fetch_balance()
    for code in ("BTC", "USD"):
        print(f"balance {code}: free {balance[code]['free']} used {balance[code]['used']} total {balance[code]['total']}")
    trades = exchange.fetch_my_trades(SYMBOL)
    last = trades[-1]
    print(f"my trades: {len(trades)}, last {last['side']} {last['amount']} @ {last['price']} "
          f"({last['takerOrMaker']}, fee {last['fee']['cost']} {last['fee']['currency']}, order {last['order']})")

    asyncio.run(watch_until_in_sync())
    maker.cancel_order(offer["id"], SYMBOL)


async def watch_until_in_sync() -> None:
    """watch_order_book while the book changes, until it equals fetch_order_book at the same sequence."""
    pro = bourse.ccxt.pro.bourse(config("BOURSE_KEY_ID", "BOURSE_SECRET"))
    maker = bourse.ccxt.pro.bourse(config("BOURSE_MAKER_KEY_ID", "BOURSE_MAKER_SECRET"))
    try:
        await pro.load_markets()
        streamed = await pro.watch_order_book(SYMBOL)  # the snapshot
        print(f"watch_order_book snapshot at sequence {streamed['nonce']}")
        change = asyncio.ensure_future(maker.create_order(SYMBOL, "limit", "sell", 0.01, PRICE * 1.01))
        streamed = await pro.watch_order_book(SYMBOL)  # returns on the update that order made
        offer = await change
        fetched = await pro.fetch_order_book(SYMBOL)
        while streamed["nonce"] < fetched["nonce"]:
            streamed = await pro.watch_order_book(SYMBOL)
        same = (streamed["nonce"], streamed["bids"], streamed["asks"]) == (fetched["nonce"], fetched["bids"], fetched["asks"])
        print(f"watch_order_book at sequence {streamed['nonce']}: equal to fetch_order_book: {same}, "
              f"asks {streamed['asks'][:2]}")
        await maker.cancel_order(offer["id"], SYMBOL)
    finally:
        await pro.close()
        await maker.close()


if __name__ == "__main__":
    main()

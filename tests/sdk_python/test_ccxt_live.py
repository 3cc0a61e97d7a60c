"""The ccxt class against a live Bourse: the ccxt user's script (docs/examples/ccxt_bourse.py),
ccxt's unified structures checked on what the unified methods return,
check_required_credentials, error mapping, and the ccxt.pro streams."""
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import bourse.ccxt
import bourse.ccxt.async_support
import bourse.ccxt.pro
import ccxt
import pytest

from tests.sdk.helpers import create_trader

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTC/USD"


# ccxt's unified structures, as ccxt documents them (docs.ccxt.com, "Unified API"): the keys each
# must have and the types a ccxt user relies on.
def _keys(entry, *keys):
    missing = [k for k in keys if k not in entry]
    assert not missing, f"missing {missing} in {entry}"


def check_market(market):
    _keys(market, "id", "symbol", "base", "quote", "baseId", "quoteId", "active", "type", "spot", "margin", "swap",
          "future", "option", "contract", "settle", "precision", "limits", "taker", "maker", "info")
    assert market["symbol"] == f"{market['base']}/{market['quote']}" and market["type"] == "spot"
    for key in ("amount", "price"):
        assert isinstance(market["precision"][key], float) and market["precision"][key] > 0
    for key in ("amount", "price", "cost", "leverage"):
        _keys(market["limits"][key], "min", "max")
    assert market["limits"]["amount"]["min"] >= market["precision"]["amount"]
    assert isinstance(market["taker"], float) and isinstance(market["maker"], float)


def check_order_book(book, symbol):
    _keys(book, "symbol", "bids", "asks", "timestamp", "datetime", "nonce")
    assert book["symbol"] == symbol and isinstance(book["nonce"], int)
    for side, descending in (("bids", True), ("asks", False)):
        prices = [level[0] for level in book[side]]
        assert all(isinstance(p, float) and isinstance(q, float) and q > 0 for p, q in book[side])
        assert prices == sorted(prices, reverse=descending)


def check_order(order, symbol):
    _keys(order, "id", "clientOrderId", "timestamp", "datetime", "lastTradeTimestamp", "symbol", "type",
          "timeInForce", "postOnly", "side", "price", "amount", "cost", "average", "filled", "remaining", "status",
          "fee", "trades", "info")
    assert order["symbol"] == symbol and isinstance(order["id"], str) and isinstance(order["timestamp"], int)
    assert order["status"] in ("open", "closed", "canceled", "rejected", "expired")
    assert order["side"] in ("buy", "sell") and order["type"] in ("limit", "market")


def check_trade(trade, symbol, mine):
    _keys(trade, "id", "timestamp", "datetime", "symbol", "order", "type", "side", "takerOrMaker", "price", "amount",
          "cost", "fee", "info")
    assert trade["symbol"] == symbol and isinstance(trade["timestamp"], int) and trade["side"] in ("buy", "sell")
    assert abs(trade["cost"] - trade["price"] * trade["amount"]) < 1e-9
    if mine:
        assert trade["order"] and trade["takerOrMaker"] in ("maker", "taker") and trade["fee"]["currency"]


def check_balance(balance):
    _keys(balance, "info", "free", "used", "total")
    for code, total in balance["total"].items():
        assert abs(balance[code]["free"] + balance[code]["used"] - total) < 1e-9, code


def check_ticker(ticker, symbol):
    _keys(ticker, "symbol", "timestamp", "high", "low", "bid", "ask", "open", "close", "last", "baseVolume",
          "quoteVolume", "info")
    assert ticker["symbol"] == symbol


def check_currency(currency):
    _keys(currency, "id", "code", "name", "active", "deposit", "withdraw", "precision", "limits", "info")


def check_position(position, symbol):
    _keys(position, "symbol", "side", "contracts", "entryPrice", "markPrice", "notional", "unrealizedPnl",
          "realizedPnl", "info")
    assert position["symbol"] == symbol


def check_ledger_entry(entry, code):
    _keys(entry, "id", "timestamp", "datetime", "direction", "account", "referenceId", "type", "currency", "amount",
          "status", "info")
    assert entry["currency"] == code and entry["amount"] >= 0 and entry["direction"] in ("in", "out")
    assert entry["type"] in ("trade", "transaction", "margin", "cashback", "referral", "transfer", "fee")


def _config(url, trader, **extra):
    extra.setdefault("timeout", 30000)
    if "private_key" in trader:
        return {"apiKey": trader["key_id"], "secret": trader["private_key"], "urls": {"api": url},
                "options": {"signatureScheme": "ed25519"}, **extra}
    return {"apiKey": trader["key_id"], "secret": trader["secret"], "urls": {"api": url}, **extra}


def test_the_ccxt_script(bourse_url):
    from trading.models import Fill

    me = create_trader("ccxt-me", "USD=10000")
    maker = create_trader("ccxt-maker", "BTC=1")
    env = {**os.environ, "BOURSE_URL": bourse_url, "BOURSE_KEY_ID": me["key_id"], "BOURSE_SECRET": me["secret"],
           "BOURSE_MAKER_KEY_ID": maker["key_id"], "BOURSE_MAKER_SECRET": maker["secret"]}
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / "ccxt_bourse.py")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "markets: ['BTC/USD']" in out
    assert "BTC/USD: id BTC-USD price tick 0.01 amount step 0.0001" in out
    assert ": canceled" in out and "cancelling it again: OrderNotFound" in out
    assert "bought 0.02 @ 100.0: closed" in out
    assert "a too large order: InsufficientFunds" in out
    assert "balance BTC: free 0.02 used 0.0 total 0.02" in out
    assert "my trades: 1, last buy 0.02 @ 100.0 (taker, fee" in out
    assert "equal to fetch_order_book: True, asks [[100.0, 0.03], [101.0, 0.01]]" in out
    assert Fill.objects.filter(account_id=me["account_id"], liquidity="taker").count() == 1


def test_credentials_and_structures(bourse_url):
    me = create_trader("ccxt-struct", "USD=10000", scheme="ed25519")
    maker = create_trader("ccxt-struct-maker", "BTC=1")

    missing = bourse.ccxt.bourse({"apiKey": me["key_id"], "urls": {"api": bourse_url}, "timeout": 30000})
    assert missing.check_required_credentials(False) is False
    with pytest.raises(ccxt.AuthenticationError):
        missing.check_required_credentials()
    with pytest.raises(ccxt.AuthenticationError):
        missing.fetch_balance()

    exchange = bourse.ccxt.bourse(_config(bourse_url, me))
    assert exchange.check_required_credentials() is True
    assert exchange.has["fetchOHLCV"] is False and exchange.timeframes == {}
    with pytest.raises(ccxt.NotSupported):
        exchange.fetch_ohlcv(SYMBOL)
    seller = bourse.ccxt.bourse(_config(bourse_url, maker))

    markets = exchange.load_markets()
    for market in markets.values():
        check_market(market)
    market = markets[SYMBOL]
    assert (market["spot"], market["active"], market["type"]) == (True, True, "spot")
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.01, 0.0001)
    assert market["limits"]["amount"]["min"] == 0.0001 and market["limits"]["price"]["min"] == 0.01
    for currency in exchange.fetch_currencies().values():
        # Bourse publishes no asset decimals yet (GET /assets is not in the API): precision is None.
        check_currency(currency)
        assert currency["precision"] is None and (currency["deposit"], currency["withdraw"]) == (False, False)
    assert abs(exchange.fetch_time() - exchange.milliseconds()) < 5000

    offer = seller.create_order(SYMBOL, "limit", "sell", 0.5, 100.0, {"clientOrderId": "ccxt-offer"})
    check_order(offer, SYMBOL)
    assert (offer["status"], offer["clientOrderId"], offer["timeInForce"]) == ("open", "ccxt-offer", "GTC")
    book = exchange.fetch_order_book(SYMBOL)
    # A Bourse book carries its sequence (ccxt's nonce), not a time: timestamp is None.
    check_order_book(book, SYMBOL)
    assert book["timestamp"] is None
    assert book["asks"] == [[100.0, 0.5]] and isinstance(book["nonce"], int)

    bought = exchange.create_order(SYMBOL, "market", "buy", 0.1, 100.0)  # cost = amount * price
    assert (bought["status"], bought["filled"], bought["type"]) == ("closed", 0.1, "market")
    with_cost = exchange.create_market_buy_order_with_cost(SYMBOL, 5)
    assert with_cost["filled"] == 0.05
    with pytest.raises(ccxt.InvalidOrder):
        exchange.create_order(SYMBOL, "market", "buy", 0.1)  # a market buy needs a price or a cost
    post_only = exchange.create_order(SYMBOL, "limit", "buy", 0.1, 100.0, {"postOnly": True})
    assert post_only["status"] == "rejected" and post_only["postOnly"] is True

    ticker = exchange.fetch_ticker(SYMBOL)
    check_ticker(ticker, SYMBOL)
    assert ticker["last"] == 100.0 and ticker["ask"] == 100.0
    assert list(exchange.fetch_tickers()) == [SYMBOL]
    trades = exchange.fetch_trades(SYMBOL)
    for trade in trades:
        check_trade(trade, SYMBOL, mine=False)
    mine = exchange.fetch_my_trades(SYMBOL)
    for trade in mine:
        check_trade(trade, SYMBOL, mine=True)
    assert [t["order"] for t in mine] == [bought["id"], with_cost["id"]]
    assert exchange.fetch_order_trades(bought["id"])[0]["amount"] == 0.1
    balance = exchange.fetch_balance()
    check_balance(balance)
    assert balance["BTC"]["total"] == 0.15
    for position in exchange.fetch_positions():
        check_position(position, SYMBOL)
        assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 0.15, 100.0)
    for entry in exchange.fetch_ledger("USD"):
        check_ledger_entry(entry, "USD")

    fetched = seller.fetch_order(offer["id"])
    assert (fetched["filled"], fetched["remaining"], fetched["status"]) == (0.15, 0.35, "open")
    assert seller.fetch_order(None, None, {"clientOrderId": "ccxt-offer"})["id"] == offer["id"]
    assert [o["id"] for o in seller.fetch_open_orders(SYMBOL)] == [offer["id"]]
    cancelled = seller.cancel_all_orders(SYMBOL)
    assert [o["id"] for o in cancelled] == [offer["id"]] and cancelled[0]["status"] == "canceled"
    assert [o["status"] for o in seller.fetch_closed_orders(SYMBOL)] == ["canceled"]
    assert seller.fetch_orders(SYMBOL)[0]["id"] == offer["id"]

    with pytest.raises(ccxt.OrderNotFound):
        seller.cancel_order(offer["id"])  # closed
    with pytest.raises(ccxt.OrderNotFound):
        seller.fetch_order("987654321")
    with pytest.raises(ccxt.InvalidOrder):
        seller.create_order(SYMBOL, "limit", "sell", 0.00001, 100.0)  # below the lot size
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order(SYMBOL, "limit", "buy", 1000, 100.0)
    with pytest.raises(ccxt.BadSymbol):
        exchange.fetch_order_book("DOGE/USD")
    wrong = bourse.ccxt.bourse({"apiKey": maker["key_id"], "secret": "wrong", "urls": {"api": bourse_url},
                                "timeout": 30000})
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_balance()


def test_async_and_pro_streams(bourse_url):
    me = create_trader("ccxt-pro", "USD=10000")
    maker = create_trader("ccxt-pro-maker", "BTC=1")

    async def scenario():
        seller = bourse.ccxt.async_support.bourse(_config(bourse_url, maker))
        pro = bourse.ccxt.pro.bourse(_config(bourse_url, me))
        try:
            await pro.load_markets()
            assert pro.has["watchOrderBook"] and pro.has["watchOrders"] and pro.has["watchBalance"]
            book = await pro.watch_order_book(SYMBOL)  # the snapshot
            start = book["nonce"]
            # ccxt.pro resolves a watch on the next update: watch first, then change things.
            book_task = asyncio.ensure_future(pro.watch_order_book(SYMBOL))
            orders_task = asyncio.ensure_future(pro.watch_orders(SYMBOL))
            trades_task = asyncio.ensure_future(pro.watch_trades(SYMBOL))
            await asyncio.sleep(0.5)  # the subscriptions are in place
            await seller.create_order(SYMBOL, "limit", "sell", 0.5, 100.0)
            book = await asyncio.wait_for(book_task, 30)
            assert book["asks"] == [[100.0, 0.5]] and book["nonce"] == start + 1
            balance_task = asyncio.ensure_future(pro.watch_balance())
            await asyncio.sleep(0.5)
            bought = await pro.create_order(SYMBOL, "limit", "buy", 0.2, 100.0)
            orders = await asyncio.wait_for(orders_task, 30)
            trades = await asyncio.wait_for(trades_task, 30)
            balance = await asyncio.wait_for(balance_task, 30)
            for _ in range(100):  # the book the watch keeps, against REST at the same sequence
                fetched = await pro.fetch_order_book(SYMBOL)
                streamed = pro.orderbooks[SYMBOL].limit()
                if streamed["nonce"] == fetched["nonce"]:
                    break
                await asyncio.sleep(0.1)
            # A dropped connection: the next watch reconnects and resumes with since.
            seen = {o["id"]: o["status"] for o in pro.orders}
            await pro.clients[pro.bourse_ws_url()].connection.close()
            await asyncio.sleep(0.2)
            missed = await pro.create_order(SYMBOL, "limit", "buy", 0.1, 100.0)
            for _ in range(10):
                later = await asyncio.wait_for(pro.watch_orders(SYMBOL), 30)
                if any(o["id"] == missed["id"] and o["status"] == "closed" for o in later):
                    break
            return bought, orders, trades, balance, fetched, streamed, seen, missed, list(pro.orders)
        finally:
            await seller.close()
            await pro.close()

    bought, orders, trades, balance, fetched, streamed, seen, missed, all_orders = asyncio.run(scenario())
    assert bought["id"] in {o["id"] for o in orders} or bought["id"] in seen
    assert (trades[-1]["price"], trades[-1]["amount"]) == (100.0, 0.2)
    assert set(balance) >= {"BTC", "USD", "free", "used", "total"}
    assert (streamed["nonce"], streamed["bids"], streamed["asks"]) == (fetched["nonce"], fetched["bids"], fetched["asks"])
    assert fetched["asks"] == [[100.0, 0.3]]
    assert seen[bought["id"]] == "closed"
    ids = [o["id"] for o in all_orders]
    assert missed["id"] in ids and len(ids) == len(set(ids))

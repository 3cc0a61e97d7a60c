"""The ccxt class against a live Bourse: the ccxt user's script (docs/examples/ccxt_bourse.py),
ccxt's own structure checks (ccxt.test.exchange.base) on what the unified methods return,
check_required_credentials, error mapping, and the ccxt.pro streams."""
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import ccxt
import pytest
from ccxt.test.exchange.base import test_balance as check_balance
from ccxt.test.exchange.base import test_currency as check_currency
from ccxt.test.exchange.base import test_ledger_entry as check_ledger_entry
from ccxt.test.exchange.base import test_market as check_market
from ccxt.test.exchange.base import test_order as check_order
from ccxt.test.exchange.base import test_order_book as check_order_book
from ccxt.test.exchange.base import test_position as check_position
from ccxt.test.exchange.base import test_ticker as check_ticker
from ccxt.test.exchange.base import test_trade as check_trade

import bourse.ccxt
import bourse.ccxt.async_support
import bourse.ccxt.pro
from tests.sdk.helpers import create_trader

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTC/USD"


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
    skipped = {}

    markets = exchange.load_markets()
    for market in markets.values():
        check_market(exchange, skipped, "fetchMarkets", market)
    market = markets[SYMBOL]
    assert (market["spot"], market["active"], market["type"]) == (True, True, "spot")
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.01, 0.0001)
    assert market["limits"]["amount"]["min"] == 0.0001 and market["limits"]["price"]["min"] == 0.01
    for currency in exchange.fetch_currencies().values():
        # Bourse publishes no asset decimals yet (GET /assets is not in the API): precision is None.
        check_currency(exchange, {"precision": True}, "fetchCurrencies", currency)
        assert currency["precision"] is None and (currency["deposit"], currency["withdraw"]) == (False, False)
    assert abs(exchange.fetch_time() - exchange.milliseconds()) < 5000

    offer = seller.create_order(SYMBOL, "limit", "sell", 0.5, 100.0, {"clientOrderId": "ccxt-offer"})
    check_order(exchange, skipped, "createOrder", offer, SYMBOL, exchange.milliseconds())
    assert (offer["status"], offer["clientOrderId"], offer["timeInForce"]) == ("open", "ccxt-offer", "GTC")
    book = exchange.fetch_order_book(SYMBOL)
    # A Bourse book carries its sequence (ccxt's nonce), not a time: timestamp is None.
    check_order_book(exchange, {"timestamp": True, "datetime": True}, "fetchOrderBook", book, SYMBOL)
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
    check_ticker(exchange, skipped, "fetchTicker", ticker, SYMBOL)
    assert ticker["last"] == 100.0 and ticker["ask"] == 100.0
    assert list(exchange.fetch_tickers()) == [SYMBOL]
    trades = exchange.fetch_trades(SYMBOL)
    for trade in trades:
        check_trade(exchange, skipped, "fetchTrades", trade, SYMBOL, exchange.milliseconds(), True)
    mine = exchange.fetch_my_trades(SYMBOL)
    for trade in mine:
        check_trade(exchange, skipped, "fetchMyTrades", trade, SYMBOL, exchange.milliseconds(), False)
    assert [t["order"] for t in mine] == [bought["id"], with_cost["id"]]
    assert exchange.fetch_order_trades(bought["id"])[0]["amount"] == 0.1
    balance = exchange.fetch_balance()
    check_balance(exchange, skipped, "fetchBalance", balance)
    assert balance["BTC"]["total"] == 0.15
    for position in exchange.fetch_positions():
        # Spot holdings computed at the request: no timestamp of their own, no margin or liquidation.
        no_margin = dict.fromkeys(["timestamp", "datetime", "maintenanceMargin", "maintenanceMarginPercentage",
                                   "liquidationPrice", "marginRatio", "collateral", "positionMargin", "marginMode"], True)
        check_position(exchange, no_margin, "fetchPositions", position, SYMBOL,
                       exchange.milliseconds())
        assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 0.15, 100.0)
    for entry in exchange.fetch_ledger("USD"):
        # Signed movements per bucket, not running balances (no before/after); fees are entries of their own.
        check_ledger_entry(exchange, {"before": True, "after": True, "fee": True}, "fetchLedger", entry, "USD",
                           exchange.milliseconds())

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

"""One order-entry scenario over REST, WebSocket and FIX against the real servers (daphne,
the FIX gateway, the engine process), with the same outcome on each.

The scenario, per transport on a market of its own, a counterparty trading against it through
the services:

1. place two buys at one price (A then B);
2. amend A's quantity down — it keeps its place: a sell fills A, not B;
3. place C, then D at a higher price; amend C's price to D's — it loses its place: a sell
   there fills D, not C;
4. a stop-limit buy rests untriggered until a trade prints at its stop price, then enters the book;
5. a GTD buy is cancelled (``expired``) at its expire time;
6. a batch of three orders, the middle one off the tick: two accepted, one refused
   (REST ``POST /orders/batch``; WebSocket has no batch: three ``place_order`` ops sent at
   once; FIX: three NewOrderSingles);
7. the dead-man switch cancels everything still open (REST ``POST /cancel-after``, WebSocket
   ``cancel_after``; FIX has no dead-man message: cancel-on-disconnect is what it has, so
   its session logs on with 8013=Y and disconnects — ``cancel_reason`` ``disconnect``).

The outcome is printed as a table (run with ``-s`` to see it) and must be the same for the
three transports, but for the reason of step 7 named above.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import quickfix as fix

from tests.factories import AccountFactory, ApiKeyFactory, AssetFactory, MarketFactory
from tests.fix.support import Processes, QuickFixClient, qf_new_order
from tests.support import daphne_server, fund
from trading.models import Order
from trading.services import order_submit

from .transports import Rest, Ws, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True), pytest.mark.slow,
    pytest.mark.skipif("stop_limit" not in Order.Type.values, reason="needs the engine services of issue-18a (stops, GTD, amend)"),
]

MARKETS = {"rest": "BTC-USD", "ws": "ETH-USD", "fix": "SOL-USD"}


def _limit(market, side, quantity, price, cid, **extra):
    return {"market": market, "side": side, "type": "limit", "quantity": quantity, "price": price,
            "client_order_id": cid, **extra}


# --- the transports -------------------------------------------------------------------------
class RestEntry:
    name = "rest"

    def __init__(self, server, key):
        self.rest = Rest(server.http, key)

    def place(self, body) -> str:
        status, order = self.rest.post("/orders", body)
        assert status == 201, (status, order)
        return order["order_id"]

    def amend(self, order_id, **changes):
        status, order = self.rest.request("PATCH", f"/orders/{order_id}", changes)
        assert status == 200, (status, order)

    def batch(self, bodies) -> list[str]:
        status, answer = self.rest.post("/orders/batch", {"orders": bodies})
        assert status == 200, answer
        return ["accepted" if r["status"] == 201 else f"refused {r['error']['code']}" for r in answer["results"]]

    def stop_everything(self, timeout_ms: int) -> str:
        status, armed = self.rest.post("/cancel-after", {"timeout_ms": timeout_ms})
        assert status == 200 and armed["trigger_time"], armed
        return "POST /cancel-after, not re-armed"

    def close(self):
        pass


class WsEntry:
    name = "ws"

    def __init__(self, server, key):
        self.ws = Ws(server.ws, key)

    def place(self, body) -> str:
        reply = self.ws.ask({"op": "place_order", **body})
        assert reply["type"] == "order" and reply["order"]["status"] not in ("pending", "rejected"), reply
        return reply["order"]["order_id"]

    def amend(self, order_id, **changes):
        reply = self.ws.ask({"op": "amend_order", "order_id": order_id, **changes})
        assert reply["type"] == "order", reply

    def batch(self, bodies) -> list[str]:
        import json

        ids = []
        for body in bodies:  # sent at once, answered in order
            self.ws.next_id += 1
            ids.append(f"b{self.ws.next_id}")
            self.ws.conn.send(json.dumps({"op": "place_order", "id": ids[-1], **body}))
        replies = {}
        while len(replies) < len(ids):
            frame = json.loads(self.ws.conn.recv(timeout=15))
            if frame.get("id") in ids:
                replies[frame["id"]] = frame
        return ["accepted" if replies[i]["type"] == "order" else f"refused {replies[i]['code']}" for i in ids]

    def stop_everything(self, timeout_ms: int) -> str:
        reply = self.ws.ask({"op": "cancel_after", "timeout_ms": timeout_ms})
        assert reply["type"] == "cancel_after" and reply["trigger_time"], reply
        return "op cancel_after, not re-armed"

    def close(self):
        self.ws.close()


class FixEntry:
    name = "fix"

    def __init__(self, processes, key):
        self.client = QuickFixClient(key, processes.port, cancel_on_disconnect="Y")
        assert self.client.start(), processes.output()
        self.by_id: dict[str, str] = {}  # order id -> its current ClOrdID
        self.amends = 0
        self.seen: dict[str, list] = {}

    def _execution(self, cl):
        """The next ExecutionReport for ClOrdID ``cl`` (others that come first are kept)."""
        while True:
            waiting = self.seen.get(cl)
            if waiting:
                return waiting.pop(0)
            message = self.client.next_app(timeout=15, msg_type="8")
            self.seen.setdefault(message.get(11), []).append(message)

    def _new_order(self, body):
        side = fix.Side_BUY if body["side"] == "buy" else fix.Side_SELL
        ord_type = {"limit": fix.OrdType_LIMIT, "stop_limit": fix.OrdType_STOP_LIMIT}[body["type"]]
        tif = {"gtc": None, "gtd": fix.TimeInForce_GOOD_TILL_DATE}[body.get("time_in_force", "gtc")]
        message = qf_new_order(body["client_order_id"], side, body["quantity"], body["price"], ord_type=ord_type,
                               tif=tif, symbol=body["market"])
        if body.get("stop_price"):
            message.setField(fix.StringField(99, body["stop_price"]))
        if body.get("expire_time"):
            moment = datetime.fromisoformat(body["expire_time"].replace("Z", "+00:00"))
            message.setField(fix.StringField(126, moment.strftime("%Y%m%d-%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"))
        return message

    def place(self, body) -> str:
        self.client.send(self._new_order(body))
        report = self._execution(body["client_order_id"])
        assert report.get(150) == "0", report.fields
        self.by_id[report.get(37)] = body["client_order_id"]
        return report.get(37)

    def amend(self, order_id, **changes):
        self.amends += 1
        orig = self.by_id[order_id]
        order = Order.objects.select_related("market").get(pk=order_id)
        new_cl = f"{orig}-r{self.amends}"
        message = fix.Message()
        message.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelReplaceRequest))
        message.setField(fix.OrigClOrdID(orig))
        message.setField(fix.ClOrdID(new_cl))
        message.setField(fix.StringField(37, order_id))
        message.setField(fix.Symbol(order.market.symbol))
        message.setField(fix.Side(fix.Side_BUY if order.side == "buy" else fix.Side_SELL))
        message.setField(fix.TransactTime())
        message.setField(fix.OrdType(fix.OrdType_LIMIT))
        message.setField(fix.StringField(38, changes.get("quantity") or format(order.quantity, "f")))
        message.setField(fix.StringField(44, changes.get("price") or format(order.price, "f")))
        self.client.send(message)
        report = self._execution(new_cl)
        assert (report.get(150), report.get(41)) == ("5", orig), report.fields
        self.by_id[order_id] = new_cl

    def batch(self, bodies) -> list[str]:
        for body in bodies:  # sent at once
            self.client.send(self._new_order(body))
        outcome = []
        for body in bodies:
            report = self._execution(body["client_order_id"])
            outcome.append("accepted" if report.get(150) == "0" else f"refused {report.get(58).split(':')[0]}")
        return outcome

    def stop_everything(self, timeout_ms: int) -> str:
        self.client.stop()  # Logout and disconnect: cancel-on-disconnect (8013=Y at Logon)
        return "no dead-man message in FIX: CancelOnDisconnect(8013)=Y, then Logout"

    def close(self):
        self.client.stop()


# --- the scenario ---------------------------------------------------------------------------
def _state(order_id) -> tuple:
    order = Order.objects.get(pk=order_id)
    return order.status, format(order.filled_quantity.normalize(), "f"), order.cancel_reason or None


def _wait_state(order_id, status, timeout=20.0) -> tuple:
    assert wait_for(lambda: Order.objects.get(pk=order_id).status == status, timeout=timeout), _state(order_id)
    return _state(order_id)


def scenario(entry, market: str, maker, taker) -> dict:
    """Runs the steps over ``entry``; returns the outcome (transport-neutral)."""
    p = entry.name
    out: dict[str, object] = {}

    def counter(account, side, quantity, price, tif="gtc"):
        result = order_submit(account=account, market=market, side=side, type="limit", quantity=quantity, price=price,
                              time_in_force=tif, wait=10)
        assert result.order.status not in ("pending", "rejected"), result.order.status
        return result.order

    # 1. place
    a = entry.place(_limit(market, "buy", "1.0000", "100.00", f"{p}-A"))
    b = entry.place(_limit(market, "buy", "1.0000", "100.00", f"{p}-B"))
    out["1 place A, B at 100"] = (_state(a), _state(b))
    # 2. amend A's quantity down: it keeps its place ahead of B
    entry.amend(a, quantity="0.6000")
    counter(maker, "sell", "0.5000", "100.00", tif="ioc")
    out["2 amend A 1.0->0.6, sell 0.5@100"] = {"A": _state(a), "B": _state(b)}
    # 3. C at 101, D at 101.50 after it; C's price amended to D's: C now queues behind D
    c = entry.place(_limit(market, "buy", "0.4000", "101.00", f"{p}-C"))
    d = entry.place(_limit(market, "buy", "0.4000", "101.50", f"{p}-D"))
    entry.amend(c, price="101.50")
    counter(maker, "sell", "0.4000", "101.50", tif="ioc")
    out["3 amend C 101->101.50, sell 0.4@101.50"] = {"C": _state(c), "D": _state(d)}
    # 4. a stop-limit buy, triggered by a trade printing at 102
    s = entry.place(_limit(market, "buy", "0.2000", "102.50", f"{p}-S", type="stop_limit", stop_price="102.00"))
    before = _state(s)
    counter(maker, "sell", "0.1000", "102.00")
    counter(taker, "buy", "0.1000", "102.00")
    after = _wait_state(s, "open")
    out["4 stop buy 0.2 stop 102 limit 102.50; trade @102"] = {"before": before, "after": after}
    # 5. a GTD order expires
    expire = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    g = entry.place(_limit(market, "buy", "0.1000", "90.00", f"{p}-G", time_in_force="gtd", expire_time=expire))
    placed = _state(g)
    expired = _wait_state(g, "cancelled")
    out["5 gtd buy, expire in 2 s"] = {"placed": placed, "then": expired}
    # 6. a batch with one bad item
    bodies = [_limit(market, "buy", "0.1000", "95.00", f"{p}-X1"), _limit(market, "buy", "0.1000", "95.001", f"{p}-X2"),
              _limit(market, "buy", "0.1000", "94.00", f"{p}-X3")]
    out["6 batch of 3, the 2nd off the tick"] = entry.batch(bodies)
    # 7. the dead-man switch
    live = list(Order.objects.filter(market__symbol=market, client_order_id__startswith=f"{p}-",
                                     status__in=Order.LIVE_STATUSES).values_list("pk", flat=True))
    how = entry.stop_everything(1000)
    started = time.monotonic()
    assert wait_for(lambda: not Order.objects.filter(pk__in=live, status__in=Order.LIVE_STATUSES).exists(), timeout=20)
    reasons = sorted({Order.objects.get(pk=pk).cancel_reason for pk in live})
    out["7 dead-man switch"] = {"how": how, "cancelled": len(live), "reasons": reasons,
                               "within_s": "<5" if time.monotonic() - started < 5 else ">=5"}
    return out


def test_the_same_scenario_over_rest_websocket_and_fix():
    usd = AssetFactory(code="USD", scale=6)
    for code in ("BTC", "ETH", "SOL"):
        MarketFactory(base=AssetFactory(code=code, scale=8), quote=usd)
    maker, taker = AccountFactory(name="maker"), AccountFactory(name="taker")
    for account in (maker, taker):
        fund(account, USD="1000000", BTC="100", ETH="100", SOL="100")
    keys = {}
    for name in MARKETS:
        keys[name] = ApiKeyFactory(label=name)
        fund(keys[name].account, USD="100000")

    outcomes = {}
    processes = Processes(markets=tuple(MARKETS.values()))
    try:
        with daphne_server() as server:
            for name, market in MARKETS.items():
                entry = {"rest": lambda: RestEntry(server, keys["rest"]), "ws": lambda: WsEntry(server, keys["ws"]),
                         "fix": lambda: FixEntry(processes, keys["fix"])}[name]()
                try:
                    outcomes[name] = scenario(entry, market, maker, taker)
                finally:
                    entry.close()
    finally:
        output = processes.stop()

    lines = ["", "cross-transport scenario (status, filled, cancel_reason):"]
    for step in outcomes["rest"]:
        lines.append(f"  {step}")
        for name in MARKETS:
            lines.append(f"    {name:4} {outcomes[name][step]}")
    print("\n".join(lines))

    def neutral(outcome):
        return {step: ({k: v for k, v in value.items() if k not in ("how", "reasons")} if step.startswith("7") else value)
                for step, value in outcome.items()}

    assert neutral(outcomes["rest"]) == neutral(outcomes["ws"]) == neutral(outcomes["fix"]), output[-3000:]
    assert outcomes["rest"]["7 dead-man switch"]["reasons"] == outcomes["ws"]["7 dead-man switch"]["reasons"] == ["dead_man"]
    assert outcomes["fix"]["7 dead-man switch"]["reasons"] == ["disconnect"]
    # and the outcome is the intended one
    rest = outcomes["rest"]
    assert rest["2 amend A 1.0->0.6, sell 0.5@100"] == {"A": ("partially_filled", "0.5", None), "B": ("open", "0", None)}
    assert rest["3 amend C 101->101.50, sell 0.4@101.50"] == {"C": ("open", "0", None), "D": ("filled", "0.4", None)}
    assert rest["4 stop buy 0.2 stop 102 limit 102.50; trade @102"] == {
        "before": ("untriggered", "0", None), "after": ("open", "0", None)}
    assert rest["5 gtd buy, expire in 2 s"] == {"placed": ("open", "0", None), "then": ("cancelled", "0", "expired")}
    assert rest["6 batch of 3, the 2nd off the tick"] == ["accepted", "refused validation_error", "accepted"]
    assert rest["7 dead-man switch"]["cancelled"] == 6  # A, B, C, S, X1, X3

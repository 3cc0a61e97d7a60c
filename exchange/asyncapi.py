"""The AsyncAPI 3.0 document of the WebSocket API (``/ws/v1``; docs/websocket.md).

Generated (``make openapi`` writes docs/asyncapi.yaml; a test fails when it is stale): the
payload schemas of private events and market data are the OpenAPI components themselves
(``Order``, ``Fill``, ``Trade``, ``Ticker``, ``Balance``, ``Book``), copied with everything
they reference, and the error frame's members come from the error catalogue, so the two
documents cannot disagree. The WebSocket tests validate every frame they receive against it
(``server_frame_validator``).
"""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import yaml
from django.conf import settings
from django.utils.html import escape

from .schema import problem_schema

ASYNCAPI_PATH = Path(settings.BASE_DIR) / "docs" / "asyncapi.yaml"
SHARED = ["Order", "Fill", "Trade", "Ticker", "Balance", "Book", "OrderSubmit"]


def _referenced(schemas: dict, names: list[str]) -> dict:
    """``names`` and every component schema they reference, transitively."""
    out, todo = {}, list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = copy.deepcopy(schemas[name])
        text = json.dumps(out[name])
        # The reference ends at its closing quote (text after it may hold slashes too).
        todo += [ref.split('"')[0].split("/")[-1] for ref in text.split('"$ref": "')[1:]]
    return dict(sorted(out.items()))


def _obj(properties: dict, required: list[str], description: str = "") -> dict:
    schema = {"type": "object", "properties": properties, "required": required}
    if description:
        schema["description"] = description
    return schema


ID = {"description": "The request's `id`, echoed (any JSON value; absent or null when not given)."}
CHANNELS = {"type": "array", "minItems": 1, "items": {"type": "string"},
            "description": "Channel names: `book:<symbol>`, `trades:<symbol>`, `ticker:<symbol>`, `orders`, `fills`, `balances`."}


def _const(value: str) -> dict:
    return {"type": "string", "const": value}


def _messages() -> dict[str, tuple[str, str, dict]]:
    """name -> (direction, title, payload): ``client`` messages the server receives, ``server`` ones it sends."""
    level = {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2,
             "description": "`[price, quantity]`, decimal strings."}
    problem = problem_schema()["properties"]
    extensions = {k: v for k, v in problem.items() if k not in ("type", "title", "status", "detail", "code", "request_id")}
    return {
        # --- client -> server ---------------------------------------------------------------
        "ping": ("client", "Ping", _obj({"op": _const("ping"), "id": ID}, ["op"])),
        "auth": ("client", "Authenticate", _obj({
            "op": _const("auth"), "id": ID,
            "key": {"type": "string", "description": "The API key id (`bk_…`)."},
            "timestamp": {"type": ["string", "integer"], "description": "Unix epoch milliseconds."},
            "nonce": {"type": "string", "description": "16-64 characters of `A-Za-z0-9_-`."},
            "signature": {"type": "string", "description": "Signature of `GET /ws/v1` with empty query and body (docs/signing.md)."},
            "window": {"type": ["string", "integer"], "description": "Optional window in ms, as `X-API-Window`."},
            "cancel_on_disconnect": {"type": "boolean", "default": False,
                                     "description": "Cancel every live order of the key's account when this connection "
                                                    "closes, whatever closes it (`cancel_reason` `disconnect`; needs scope `trade`)."},
        }, ["op", "key", "timestamp", "nonce", "signature"])),
        # Order entry (after `auth` with a key of scope `trade`): the REST operations' twins.
        "placeOrder": ("client", "Place an order", {"allOf": [
            {"$ref": "#/components/schemas/OrderSubmit"},
            _obj({"op": _const("place_order"), "id": ID}, ["op"]),
        ], "description": "The body of `POST /orders` with `op` (and `id`)."}),
        "amendOrder": ("client", "Amend an order", _obj({
            "op": _const("amend_order"), "id": ID,
            "order_id": {"type": "string", "description": "The order's id."},
            "price": {"type": "string", "description": "The new limit price (loses time priority)."},
            "quantity": {"type": "string", "description": "The new total quantity (a decrease at the same price keeps "
                                                          "time priority, an increase loses it)."},
            "client_order_id": {"type": "string", "description": "A new client order id."},
        }, ["op", "order_id"], "`PATCH /orders/{order_id}`: any of `price`, `quantity`, `client_order_id`.")),
        "cancelOrder": ("client", "Cancel an order", _obj({
            "op": _const("cancel_order"), "id": ID,
            "order_id": {"type": "string", "description": "The order's id (or give `client_order_id`)."},
            "client_order_id": {"type": "string", "description": "The `client_order_id` it was placed with."},
        }, ["op"], "Exactly one of `order_id` and `client_order_id`.")),
        "cancelAll": ("client", "Cancel all open orders", _obj({
            "op": _const("cancel_all"), "id": ID,
            "market": {"type": "string", "description": "Only this market's orders."}}, ["op"])),
        "cancelAfter": ("client", "Arm the dead-man switch", _obj({
            "op": _const("cancel_after"), "id": ID,
            "timeout_ms": {"type": "integer", "description": "0 disarms; otherwise 1000-600000 (as `POST /cancel-after`)."},
        }, ["op", "timeout_ms"])),
        "subscribe": ("client", "Subscribe", _obj({
            "op": _const("subscribe"), "id": ID, "channels": CHANNELS,
            "since": {"oneOf": [{"type": "integer", "minimum": 0},
                                {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}],
                      "description": "Resume private channels after this sequence (one number, or one per channel)."},
        }, ["op", "channels"])),
        "unsubscribe": ("client", "Unsubscribe", _obj({"op": _const("unsubscribe"), "id": ID, "channels": CHANNELS},
                                                      ["op", "channels"])),
        # --- server -> client: replies ------------------------------------------------------
        "pong": ("server", "Pong", _obj({"type": _const("pong"), "id": ID}, ["type", "id"])),
        "authenticated": ("server", "Authenticated", _obj({
            "type": _const("auth"), "id": ID, "key": {"type": "string"},
            "account_id": {"type": "string"}}, ["type", "id", "key", "account_id"])),
        "subscribed": ("server", "Subscribed", _obj({
            "type": _const("subscribed"), "id": ID,
            "channels": {"type": "array", "items": _obj({
                "channel": {"type": "string"},
                "sequence": {"type": ["integer", "null"], "description": "Where the channel starts (null: trades, ticker)."},
            }, ["channel", "sequence"])}}, ["type", "id", "channels"])),
        "unsubscribed": ("server", "Unsubscribed", _obj({
            "type": _const("unsubscribed"), "id": ID, "channels": {"type": "array", "items": {"type": "string"}}},
            ["type", "id", "channels"])),
        "orderReply": ("server", "Order (reply)", _obj({
            "type": _const("order"), "id": ID, "order": {"$ref": "#/components/schemas/Order"},
        }, ["type", "id", "order"], "The order as the engine left it (still `pending` if it did not answer within 2 s).")),
        "cancelAllReply": ("server", "Cancelled orders (reply)", _obj({
            "type": _const("cancel_all"), "id": ID,
            "cancelled": {"type": "array", "items": {"type": "string"}, "description": "The cancelled order ids."},
        }, ["type", "id", "cancelled"])),
        "cancelAfterReply": ("server", "Dead-man switch (reply)", _obj({
            "type": _const("cancel_after"), "id": ID,
            "current_time": {"type": "string", "format": "date-time", "description": "The server's time."},
            "trigger_time": {"type": ["string", "null"], "format": "date-time",
                             "description": "When the switch fires unless re-armed; null: disarmed."},
        }, ["type", "id", "current_time", "trigger_time"])),
        "error": ("server", "Error", _obj({
            "type": _const("error"), "id": ID,
            "code": {"$ref": "#/components/schemas/CodeEnum"},
            "message": {"type": "string", "description": "For people; may change."},
            **extensions,
        }, ["type", "code", "message", "id"], "A refused operation or a connection-level error (docs/errors.md).")),
        # --- server -> client: channels -----------------------------------------------------
        "bookSnapshot": ("server", "Book snapshot", _obj({
            "channel": {"type": "string", "pattern": "^book:"}, "type": _const("snapshot"),
            "market": {"type": "string"}, "sequence": {"type": "integer"},
            "bids": {"type": "array", "items": level}, "asks": {"type": "array", "items": level},
        }, ["channel", "type", "market", "sequence", "bids", "asks"], "Every level, best first (as `GET /markets/{symbol}/book`).")),
        "bookUpdate": ("server", "Book update", _obj({
            "channel": {"type": "string", "pattern": "^book:"}, "type": _const("update"),
            "market": {"type": "string"}, "sequence": {"type": "integer", "description": "Snapshot's or previous + 1."},
            "bids": {"type": "array", "items": level}, "asks": {"type": "array", "items": level},
        }, ["channel", "type", "market", "sequence", "bids", "asks"], "Changed levels as `[price, new total]`; `\"0\"` removes.")),
        "trade": ("server", "Trade", _obj({
            "channel": {"type": "string", "pattern": "^trades:"}, "type": _const("trade"),
            "data": {"$ref": "#/components/schemas/Trade"}}, ["channel", "type", "data"])),
        "ticker": ("server", "Ticker", _obj({
            "channel": {"type": "string", "pattern": "^ticker:"}, "type": _const("ticker"),
            "data": {"$ref": "#/components/schemas/Ticker"}}, ["channel", "type", "data"])),
        "order": ("server", "Order event", _obj({
            "channel": _const("orders"), "type": _const("order"), "sequence": {"type": "integer"},
            "data": {"$ref": "#/components/schemas/Order"}}, ["channel", "type", "sequence", "data"])),
        "fill": ("server", "Fill event", _obj({
            "channel": _const("fills"), "type": _const("fill"), "sequence": {"type": "integer"},
            "data": {"$ref": "#/components/schemas/Fill"}}, ["channel", "type", "sequence", "data"])),
        "balance": ("server", "Balance event", _obj({
            "channel": _const("balances"), "type": _const("balance"), "sequence": {"type": "integer"},
            "data": {"$ref": "#/components/schemas/Balance"}}, ["channel", "type", "sequence", "data"])),
    }


# operation id -> (action, summary, messages, reply messages)
OPERATIONS = {
    "ping": ("receive", "Application-level round trip.", ["ping"], ["pong", "error"]),
    "auth": ("receive", "Authenticate the connection with a signed API key (scope `read`).", ["auth"], ["authenticated", "error"]),
    "subscribe": ("receive", "Subscribe to channels, all or nothing; private ones after `auth`, resumable with `since`.",
                  ["subscribe"], ["subscribed", "error"]),
    "unsubscribe": ("receive", "Unsubscribe from channels.", ["unsubscribe"], ["unsubscribed", "error"]),
    "placeOrder": ("receive", "Place an order as `POST /orders` (scope `trade`; the `orders` budget).",
                   ["placeOrder"], ["orderReply", "error"]),
    "amendOrder": ("receive", "Amend an order in place as `PATCH /orders/{order_id}` (scope `trade`; the `orders` budget).",
                   ["amendOrder"], ["orderReply", "error"]),
    "cancelOrder": ("receive", "Cancel one order by `order_id` or `client_order_id` (scope `trade`).",
                    ["cancelOrder"], ["orderReply", "error"]),
    "cancelAll": ("receive", "Cancel every open order, or a market's (scope `trade`).", ["cancelAll"],
                  ["cancelAllReply", "error"]),
    "cancelAfter": ("receive", "Arm (0: disarm) the key's dead-man switch, as `POST /cancel-after` (scope `trade`).",
                    ["cancelAfter"], ["cancelAfterReply", "error"]),
    "sendBook": ("send", "`book:<symbol>`: a snapshot, then one update per engine step that changed levels.",
                 ["bookSnapshot", "bookUpdate"], None),
    "sendTrades": ("send", "`trades:<symbol>`: each public trade.", ["trade"], None),
    "sendTicker": ("send", "`ticker:<symbol>`: the ticker now, then at most once per second after changes.", ["ticker"], None),
    "sendOrders": ("send", "`orders` (private): every change to the account's orders.", ["order"], None),
    "sendFills": ("send", "`fills` (private): each of the account's fills.", ["fill"], None),
    "sendBalances": ("send", "`balances` (private): an asset's amounts after they moved.", ["balance"], None),
    "sendErrors": ("send", "Errors not tied to a request (a dropped subscription, a closing connection).", ["error"], None),
}


def asyncapi_document(openapi_schemas: dict) -> dict:
    messages = _messages()
    channel_ref = {"$ref": "#/channels/v1"}

    def msg_ref(name):
        return {"$ref": f"#/channels/v1/messages/{name}"}

    operations = {}
    for op_id, (action, summary, sent, replies) in OPERATIONS.items():
        operation = {"action": action, "channel": channel_ref, "summary": summary,
                     "messages": [msg_ref(m) for m in sent]}
        if replies:
            operation["reply"] = {"channel": channel_ref, "messages": [msg_ref(m) for m in replies]}
        operations[op_id] = operation
    schemas = _referenced(openapi_schemas, [*SHARED, "FieldError"])
    schemas["CodeEnum"] = copy.deepcopy(openapi_schemas["CodeEnum"])
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Bourse WebSocket API",
            "version": settings.BOURSE_API_VERSION,
            "description": "Market data and the authenticated account's events over one WebSocket connection "
                           "(`/ws/v1`). Every message is one JSON object in a text frame. Guide: `/docs/websocket`; "
                           "signing: `/docs/signing`; error codes: `/docs/errors`.",
            "license": {"name": "MIT", "url": "https://spdx.org/licenses/MIT.html"},
        },
        "servers": {"local": {"host": "127.0.0.1:8000", "protocol": "ws",
                              "description": "A local Bourse started by `make run` (use your exchange's host; `wss` behind TLS)."}},
        "defaultContentType": "application/json",
        "channels": {"v1": {
            "address": "/ws/v1",
            "title": "The WebSocket endpoint",
            "description": "One connection multiplexes every operation and channel; frames name their `channel`.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
        }},
        "operations": operations,
        "components": {
            "messages": {name: {"name": name, "title": title, "payload": payload}
                         for name, (_, title, payload) in messages.items()},
            "schemas": schemas,
        },
    }


def asyncapi_yaml(openapi_schemas: dict) -> str:
    return yaml.safe_dump(asyncapi_document(openapi_schemas), sort_keys=False, allow_unicode=True, width=100)


def server_message_names() -> list[str]:
    return [name for name, (direction, _, _) in _messages().items() if direction == "server"]


@functools.lru_cache(maxsize=1)
def server_frame_validator(strict: bool = True):
    """A JSON Schema validator accepting exactly the frames the server may send, from the
    committed docs/asyncapi.yaml (``strict``: no member the document does not declare)."""
    import jsonschema

    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    components = copy.deepcopy(document["components"])
    if strict:
        for name in server_message_names():
            components["messages"][name]["payload"]["additionalProperties"] = False
    schema = {"oneOf": [{"$ref": f"#/components/messages/{name}/payload"} for name in server_message_names()],
              "components": components}
    return jsonschema.Draft202012Validator(schema)


def render_html() -> str:
    """The document as an HTML reference page (served at /docs/asyncapi)."""
    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    messages = document["components"]["messages"]
    parts = [f"<h1>{escape(document['info']['title'])} <small>{escape(document['info']['version'])}</small></h1>",
             f"<p>{escape(document['info']['description'])}</p>",
             '<p>The machine-readable document: <a href="/docs/asyncapi.yaml">asyncapi.yaml</a> (AsyncAPI 3.0). '
             'The guide: <a href="/docs/websocket">WebSocket API</a>.</p>', "<h2>Operations</h2>"]
    for op_id, operation in document["operations"].items():
        who = "client → server" if operation["action"] == "receive" else "server → client"
        names = [m["$ref"].split("/")[-1] for m in operation["messages"]]
        replies = [m["$ref"].split("/")[-1] for m in operation.get("reply", {}).get("messages", [])]
        links = ", ".join(f'<a href="#message-{n}">{escape(messages[n]["title"])}</a>' for n in names)
        reply = (" — reply: " + ", ".join(f'<a href="#message-{n}">{escape(messages[n]["title"])}</a>' for n in replies)
                 if replies else "")
        parts.append(f'<h3 id="operation-{op_id}">{escape(op_id)} <small>({who})</small></h3>'
                     f"<p>{escape(operation['summary'])}</p><p>{links}{reply}</p>")
    parts.append("<h2>Messages</h2>")
    for name, message in messages.items():
        parts.append(f'<h3 id="message-{name}">{escape(message["title"])}</h3>'
                     f"<pre><code>{escape(json.dumps(message['payload'], indent=2))}</code></pre>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(f'<h3 id="schema-{name}">{escape(name)}</h3>'
                     f"<pre><code>{escape(json.dumps(schema, indent=2))}</code></pre>")
    return "\n".join(parts)

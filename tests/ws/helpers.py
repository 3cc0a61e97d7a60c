"""Helpers of the WebSocket tests: signed ``auth`` ops, a connected communicator, and
running an async scenario from a sync test (so it shares the test's database connection)."""
import functools
import json
import time
from contextlib import asynccontextmanager

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apikeys import signing
from tests.signed import fresh_nonce
from trading.ws.routing import websocket_urlpatterns

application = URLRouter(websocket_urlpatterns)


def checked_frame(text: str) -> dict:
    """A received frame, parsed and validated against docs/asyncapi.yaml: every frame the
    WebSocket tests see must be one the AsyncAPI document describes, member for member."""
    from exchange.asyncapi import server_frame_validator

    frame = json.loads(text)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in server_frame_validator().iter_errors(frame)]
    assert not problems, f"frame not described by docs/asyncapi.yaml: {frame} {problems[:3]}"
    return frame


def auth_op(key, *, timestamp=None, nonce=None, path="/ws/v1", message_id=None, **override) -> dict:
    """``{"op": "auth", ...}`` signed like a client would sign it (GET, /ws/v1, no query/body)."""
    timestamp = timestamp if timestamp is not None else int(time.time() * 1000)
    nonce = nonce or fresh_nonce()
    message = signing.signed_string(timestamp, nonce, "GET", path, "", signing.body_sha256(b""))
    if getattr(key, "secret", None):
        signature = signing.sign_hmac(key.secret, message)
    else:
        signature = signing.sign_ed25519(key.private_key, message)
    op = {"op": "auth", "key": key.key_id, "timestamp": str(timestamp), "nonce": nonce, "signature": signature}
    if message_id is not None:
        op["id"] = message_id
    op.update(override)
    return op


def scenario(fn):
    """Run an ``async def`` test body from a sync test: DB calls made through
    ``database_sync_to_async`` then run on the test's own thread and connection."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return async_to_sync(fn)(*args, **kwargs)

    return wrapper


@asynccontextmanager
async def connected(headers=None):
    communicator = WebsocketCommunicator(application, "/ws/v1", headers=headers or [])
    ok, _ = await communicator.connect(timeout=5)
    assert ok
    try:
        yield Client(communicator)
    finally:
        await communicator.disconnect()


class Client:
    """A communicator with request/response helpers."""

    def __init__(self, communicator):
        self.c = communicator

    async def send(self, message) -> None:
        if isinstance(message, (dict, list)):
            await self.c.send_to(text_data=json.dumps(message))
        else:
            await self.c.send_to(text_data=message)

    async def recv(self, timeout=5.0) -> dict:
        return checked_frame(await self.c.receive_from(timeout=timeout))

    async def ask(self, message, timeout=5.0) -> dict:
        await self.send(message)
        return await self.recv(timeout)

    async def nothing(self, timeout=0.3) -> bool:
        return await self.c.receive_nothing(timeout=timeout)

    async def until(self, predicate, timeout=5.0) -> list[dict]:
        """Frames received until one satisfies ``predicate`` (included)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.05, deadline - time.monotonic()))
            frames.append(frame)
            if predicate(frame):
                return frames


def db(fn):
    return database_sync_to_async(fn)


async def make_key(**kwargs):
    """An API key (with its credential kept for signing), created from async code."""
    from tests.factories import ApiKeyFactory

    return await database_sync_to_async(ApiKeyFactory)(**kwargs)

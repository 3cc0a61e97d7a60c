"""Django over ASGI with a fixed pool of request threads (how daphne serves REST).

Django's ``ASGIHandler`` runs the synchronous middleware chain and view of each request in a
thread made for that request (asgiref's per-request ``ThreadSensitiveContext``). Threads are
cheap; what each new thread costs is a new database connection: Django's connections are
per thread, so every request connected to PostgreSQL afresh (a backend process forked, TLS
and authentication where configured) and dropped the connection when its thread ended —
``CONN_MAX_AGE`` could never apply.

``PooledASGIHandler`` keeps Django's ASGI handling (body read whole before the view, the
disconnect watch, streaming and file responses, the request signals) and runs the
synchronous handler — the same middleware chain a WSGI server runs — in one of
``BOURSE_HTTP_THREADS`` long-lived threads. Each keeps its connection for ``CONN_MAX_AGE``
and closes it when obsolete or broken, before and after each request, as a WSGI server's
request signals do. What Django still runs on the event loop's side — the request signals
and ``response.close()`` — goes to asgiref's one shared thread (Django's per-request thread
context started a thread per request just for them), and a synchronous streaming response
(a CSV export, say) is drained in a thread of its own, whose database connection is closed
after it: so a long export never holds up other requests. With ``BOURSE_HTTP_THREADS=0`` the stock
handler serves (for comparison: bench/order_path.md).

The threads share the process's interpreter lock, so one process uses one core for Python;
``python manage.py serve_http --processes N`` runs N daphne processes on one port.
"""
from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections, connections
from django.http import FileResponse


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int):
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bourse-http")

    async def __call__(self, scope, receive, send):
        """Django's entry point without its per-request ``ThreadSensitiveContext``: that context
        gives each request a thread executor of its own, so every request started a thread (or
        two) just to run the request signals and ``response.close()`` (~9 % of a REST
        process's time under load, by py-spy). The view runs in the pool below; what Django
        still runs through ``sync_to_async`` on the event loop's side (those signals, the close)
        goes to asgiref's one shared thread instead."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def run_get_response(self, request):
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        response = await loop.run_in_executor(self._pool, context.run, self._respond, request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming and not response.is_async:
            # Django would drain a synchronous iterator (a CSV export reading the database) in
            # the thread-sensitive executor, now asgiref's one shared thread: it would hold up
            # every request's signals for the export's length. It gets a thread of its own.
            response.streaming_content = _drained_elsewhere(response.streaming_content)
        return response

    def _respond(self, request):
        close_old_connections()  # an obsolete or broken connection of this thread goes first
        try:
            return self._sync.get_response(request)
        finally:
            close_old_connections()


async def _drained_elsewhere(iterator):
    def drain():
        try:
            return list(iterator)
        finally:
            connections.close_all()  # this thread's connections, if the iteration opened any

    for part in await asyncio.get_running_loop().run_in_executor(None, drain):
        yield part


def pooled_asgi_application():
    """The HTTP application: pooled (``BOURSE_HTTP_THREADS`` threads), or Django's own with 0."""
    threads = int(getattr(settings, "BOURSE_HTTP_THREADS", 16))
    if threads <= 0:
        return ASGIHandler()
    return PooledASGIHandler(threads)

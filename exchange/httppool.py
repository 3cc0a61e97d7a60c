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
and the iteration of a streaming response (a CSV export, say) — stays in Django's
per-request thread, which holds no database connection unless that iteration needs one: so
a long export never holds up other requests. With ``BOURSE_HTTP_THREADS=0`` the stock
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
from django.db import close_old_connections
from django.http import FileResponse


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int):
        super().__init__()
        self._sync = BaseHandler()
        self._sync.load_middleware(is_async=False)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bourse-http")

    async def run_get_response(self, request):
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        response = await loop.run_in_executor(self._pool, context.run, self._respond, request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def _respond(self, request):
        close_old_connections()  # an obsolete or broken connection of this thread goes first
        try:
            return self._sync.get_response(request)
        finally:
            close_old_connections()


def pooled_asgi_application():
    """The HTTP application: pooled (``BOURSE_HTTP_THREADS`` threads), or Django's own with 0."""
    threads = int(getattr(settings, "BOURSE_HTTP_THREADS", 16))
    if threads <= 0:
        return ASGIHandler()
    return PooledASGIHandler(threads)

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

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections, connections
from django.http import FileResponse
from django.urls import set_script_prefix


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
        process's time under load, by py-spy)."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        """Django's ``ASGIHandler.handle`` (body read whole, the disconnect watch), with the
        request signals and the close of a complete response run in the request's pool thread
        beside the view: the signals' work (closing obsolete connections) concerns that
        thread's connections, and a request hands off to another thread once, not three
        times. A streaming response is closed after it is sent, as Django does."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected while the response was being sent
            return response

        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server cancels the request (its shutdown grace over, or the client gone too
            # long). The two tasks go with it and their ends are collected here: left running,
            # the response would still be sent after the cancel and the disconnect watch would
            # end in a RequestAborted nobody retrieves (logged as a traceback by asyncio).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            body_file.close()
            raise
        for task in tasks:
            if task.done():
                if not task.cancelled() and isinstance(task.exception(), RequestAborted):
                    # The client went away (daphne says so after every response it completes).
                    # Read, never re-raised: a raise here would append this frame to the
                    # exception's traceback, and the frame holds the task that holds the
                    # exception — a reference cycle tying the whole request (request, response,
                    # DRF objects) to it, which only Python's cyclic collector could free: most
                    # of a REST process's garbage-collection time (tests/exchange/test_httppool.py,
                    # tests/api/test_request_garbage.py).
                    continue
                try:
                    task.result()
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if response.streaming:
                await sync_to_async(response.close)()
        body_file.close()

    async def run_get_response(self, request):
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        response = await loop.run_in_executor(self._pool, context.run, self._respond, request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if response.streaming and not response.is_async:
            # Django would drain a synchronous iterator (a CSV export reading the database) in
            # the thread-sensitive executor, here asgiref's one shared thread: it would hold up
            # other requests for the export's length. It gets a thread of its own.
            response.streaming_content = _drained_elsewhere(response.streaming_content)
        return response

    def _respond(self, request):
        # request_started closes this thread's obsolete or broken connection first;
        # request_finished (the close of a complete response) does after.
        signals.request_started.send(sender=self.__class__, scope=request.scope)
        try:
            response = self._sync.get_response(request)
        except BaseException:
            close_old_connections()
            raise
        if not response.streaming:
            response.close()
        return response


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

"""The REST request-thread pool (``exchange/httppool.py``) under its ASGI interface: requests
start no threads of their own, and a synchronous streaming response (a long CSV export) is
drained apart from everything else, so it never holds up other requests."""
import asyncio
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.http import HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from exchange.httppool import PooledASGIHandler

export_may_finish = threading.Event()
slow_view_entered = threading.Event()
slow_view_may_answer = threading.Event()


def _plain(request):
    return HttpResponse(b"ok")


def _export(request):
    def rows():
        yield b"first\n"
        export_may_finish.wait(10)  # a long export, still reading
        yield b"last\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


def _slow(request):
    slow_view_entered.set()
    slow_view_may_answer.wait(10)
    return HttpResponse(b"late")


urlpatterns = [path("plain", _plain), path("export", _export), path("slow", _slow)]

pytestmark = [pytest.mark.django_db(transaction=True)]


def _scope(route: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": f"/{route}", "raw_path": f"/{route}".encode(), "root_path": "", "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}


async def _get(app, route: str) -> tuple[int, bytes]:
    communicator = ApplicationCommunicator(app, _scope(route))
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(10)
    return start["status"], body


@override_settings(ROOT_URLCONF=__name__)
def test_requests_start_no_threads_of_their_own(monkeypatch):
    app = PooledASGIHandler(2)
    started = []
    real_start = threading.Thread.start

    def counting_start(thread):
        started.append(thread.name)
        real_start(thread)

    async def run():
        await _get(app, "plain")  # the pool's threads and asgiref's shared thread start once
        monkeypatch.setattr(threading.Thread, "start", counting_start)
        return [await _get(app, "plain") for _ in range(30)]

    answers = asyncio.run(run())
    assert answers == [(200, b"ok")] * 30
    # Django's per-request thread context started a thread for every request (30 here).
    assert len(started) <= 1, started


@override_settings(ROOT_URLCONF=__name__)
def test_a_long_streaming_export_does_not_hold_up_other_requests():
    app = PooledASGIHandler(4)
    export_may_finish.clear()

    async def run():
        export = asyncio.ensure_future(_get(app, "export"))
        await asyncio.sleep(0.2)  # the export is being drained
        others = await asyncio.wait_for(asyncio.gather(*(_get(app, "plain") for _ in range(5))), 5)
        assert not export.done()
        export_may_finish.set()
        return others, await export

    others, export = asyncio.run(run())
    assert others == [(200, b"ok")] * 5
    assert export == (200, b"first\nlast\n")


@override_settings(ROOT_URLCONF=__name__)
def test_the_request_signals_run_in_the_thread_that_served_the_request():
    """Their work (closing an obsolete or broken database connection) concerns that thread's
    connections; run anywhere else it closes nothing that matters."""
    from django.core import signals

    app = PooledASGIHandler(2)
    seen = []

    def record(**kwargs):
        seen.append(threading.current_thread().name)

    signals.request_started.connect(record)
    signals.request_finished.connect(record)
    try:
        assert asyncio.run(_get(app, "plain")) == (200, b"ok")
    finally:
        signals.request_started.disconnect(record)
        signals.request_finished.disconnect(record)
    assert len(seen) == 2 and all(name.startswith("bourse-http") for name in seen), seen


@override_settings(ROOT_URLCONF=__name__)
def test_a_cancelled_request_leaves_no_task_behind_and_sends_nothing_after():
    """daphne cancels an application it gives up on (the shutdown grace over, a client gone
    too long). The request's two tasks — the view's and the disconnect watch — end with it:
    left running, the response went out after the cancel and the watch's RequestAborted was
    logged by asyncio as a traceback nobody retrieved (it failed CI's graceful-shutdown test)."""
    import gc

    app = PooledASGIHandler(2)
    slow_view_entered.clear()
    slow_view_may_answer.clear()

    async def run():
        unretrieved: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unretrieved.append(context))
        inbox: asyncio.Queue = asyncio.Queue()
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        await inbox.put({"type": "http.request", "body": b""})
        request = asyncio.create_task(app(_scope("slow"), inbox.get, send))
        while not slow_view_entered.is_set():
            await asyncio.sleep(0.01)
        request.cancel()
        await inbox.put({"type": "http.disconnect"})  # what daphne sends as the connection ends
        with pytest.raises(asyncio.CancelledError):
            await request
        slow_view_may_answer.set()  # the view's thread finishes its work regardless
        await asyncio.sleep(0.3)
        gc.collect()
        await asyncio.sleep(0)
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        return sent, left, unretrieved

    sent, left, unretrieved = asyncio.run(run())
    assert sent == []
    assert left == []
    assert unretrieved == []


async def _as_daphne_serves(app, route: str) -> list[dict]:
    """One request the way daphne delivers it: the body, then ``http.disconnect`` as soon as
    the response is complete (daphne's request finishing queues it before ``send`` returns)."""
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b""})
    sent: list[dict] = []

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            inbox.put_nowait({"type": "http.disconnect"})

    await app(_scope(route), inbox.get, send)
    return sent


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[])
def test_a_finished_request_is_freed_without_the_cyclic_collector():
    """A request's objects are freed by reference counting when it ends. The disconnect watch
    ends in ``RequestAborted`` after every response daphne completes; re-raised in the handler's
    frame, the exception's traceback held that frame, the frame the task, the task the exception:
    every request (its request, response and DRF objects) became cyclic garbage that only
    Python's collector freed — 10-12 % of a REST process's CPU under load (bench/order_path.md).
    (No middleware here: Django's own tie the request into cycles of their own, the lazy
    ``request.user`` and the messages storage; the API's views skip those.)"""
    import gc
    import weakref

    app = PooledASGIHandler(1)
    made = []
    create_request = app.create_request

    def recording(scope, body_file):
        request, error = create_request(scope, body_file)
        made.append(weakref.ref(request))
        return request, error

    app.create_request = recording

    async def run():
        await _as_daphne_serves(app, "plain")  # the pool's thread and imports, once
        gc.collect()
        gc.disable()
        try:
            answers = [await _as_daphne_serves(app, "plain") for _ in range(3)]
            # The pool's worker drops its reference to the work item it ran (which holds the
            # request) only after the result reached the loop; it takes its next item after
            # that, so once a no-op has run on the pool's one thread, nothing of the pool holds
            # the last request any more (on a loaded machine the check could otherwise run first).
            await asyncio.get_running_loop().run_in_executor(app._pool, int)
            return answers, [ref() is None for ref in made[1:]]
        finally:
            gc.enable()

    answers, freed = asyncio.run(run())
    assert all(sent[0]["status"] == 200 and sent[-1]["body"] == b"ok" for sent in answers), answers
    assert freed == [True, True, True]

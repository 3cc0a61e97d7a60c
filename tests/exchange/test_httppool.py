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


def _plain(request):
    return HttpResponse(b"ok")


def _export(request):
    def rows():
        yield b"first\n"
        export_may_finish.wait(10)  # a long export, still reading
        yield b"last\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


urlpatterns = [path("plain", _plain), path("export", _export)]

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

"""ASGI entry point: HTTP through Django, WebSocket ``/ws/v1`` through ``trading.ws``.

Served by daphne: a malformed setting stops it at import with one line (exchange/preflight.py);
``exchange.serving`` adds the start-up checks, a clear port-in-use exit and the graceful
shutdown on SIGTERM.

HTTP requests run in a fixed pool of threads (``exchange.httppool``), each with its own
persistent database connection: Django's own ASGI handler runs a request's synchronous
middleware and view in a thread created for that request, which opened (and, when the
thread ended, dropped) a database connection per request.
"""
import os

import django

from exchange import preflight

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
preflight.load_settings("web")
django.setup(set_prefix=False)

from exchange.httppool import pooled_asgi_application  # noqa: E402

django_asgi_app = pooled_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from exchange import serverlimits, serving  # noqa: E402
from exchange.bodylimit import BodyLimitASGI  # noqa: E402
from exchange.logging import install_daphne_access_log  # noqa: E402
from trading.ws.routing import websocket_urlpatterns  # noqa: E402

serverlimits.install()  # bodies refused before buffering, slow clients cut, oversized frames answered
install_daphne_access_log()  # daphne's access log as JSON lines, like every other log line
serving.install()  # start-up checks before listening, port in use, graceful SIGTERM

application = ProtocolTypeRouter({
    "http": BodyLimitASGI(django_asgi_app),
    "websocket": URLRouter(websocket_urlpatterns),
})

from django.urls import get_resolver  # noqa: E402

from exchange import heap  # noqa: E402

get_resolver().check()  # the URL configuration and every view it imports, loaded (and checked) now
heap.settle()  # what is loaded by now lives as long as the server: no collection walks it again

"""ASGI entry point: HTTP through Django, WebSocket ``/ws/v1`` through ``trading.ws``.

Served by daphne: a malformed setting stops it at import with one line (exchange/preflight.py);
``exchange.serving`` adds the start-up checks, a clear port-in-use exit and the graceful
shutdown on SIGTERM.
"""
import os

from django.core.asgi import get_asgi_application

from exchange import preflight

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
preflight.load_settings("web")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from exchange import serverlimits, serving  # noqa: E402
from exchange.bodylimit import BodyLimitASGI  # noqa: E402
from trading.ws.routing import websocket_urlpatterns  # noqa: E402

serverlimits.install()  # bodies refused before buffering, slow clients cut, oversized frames answered
serving.install()  # start-up checks before listening, port in use, graceful SIGTERM

application = ProtocolTypeRouter({
    "http": BodyLimitASGI(django_asgi_app),
    "websocket": URLRouter(websocket_urlpatterns),
})

"""ASGI entry point: HTTP through Django, WebSocket ``/ws/v1`` through ``trading.ws``."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up first)

from exchange import serverlimits  # noqa: E402
from exchange.bodylimit import BodyLimitASGI  # noqa: E402
from exchange.logging import install_daphne_access_log  # noqa: E402
from trading.ws.routing import websocket_urlpatterns  # noqa: E402

serverlimits.install()  # bodies refused before buffering, slow clients cut, oversized frames answered
install_daphne_access_log()  # daphne's access log as JSON lines, like every other log line

application = ProtocolTypeRouter({
    "http": BodyLimitASGI(django_asgi_app),
    "websocket": URLRouter(websocket_urlpatterns),
})

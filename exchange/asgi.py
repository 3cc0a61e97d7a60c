"""ASGI entry point: HTTP through Django; WebSocket routes are added by the ws transport."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

from exchange.bodylimit import BodyLimitASGI  # noqa: E402

application = ProtocolTypeRouter({"http": BodyLimitASGI(django_asgi_app)})

"""WebSocket URL routes, mounted by ``exchange.asgi``."""
from django.urls import path

from .consumer import MarketDataConsumer

websocket_urlpatterns = [path("ws/v1", MarketDataConsumer.as_asgi())]

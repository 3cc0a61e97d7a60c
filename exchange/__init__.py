"""The Bourse project package: settings, URLs, ASGI/WSGI entry points, the Celery app,
the problem+json error machinery, the request-id middleware and health checks."""
from .celery import app as celery_app

__all__ = ("celery_app",)

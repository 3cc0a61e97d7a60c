"""Refuse API request bodies over ``settings.BOURSE_MAX_BODY_BYTES`` with 413.

DRF's JSON parser reads the stream itself, past Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
check, and under ASGI a body without ``Content-Length`` has no declared size at all. So the
limit is enforced here, before any view: a declared length over the limit is refused
unread; otherwise at most limit + 1 bytes are read, and one byte too many is refused too.
The bytes read become ``request.body``, which the signature check hashes and DRF parses.
"""
from io import BytesIO

from django.conf import settings

from . import errors
from .problems import problem_response

CHUNK = 64 * 1024


def _too_large(limit: int):
    return problem_response(errors.PayloadTooLarge(f"Request bodies are limited to {limit} bytes."))


class BodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        limit = settings.BOURSE_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.strip():
            try:
                if int(declared) > limit:
                    return _too_large(limit)
            except ValueError:
                return problem_response(errors.ValidationError("Content-Length is not an integer."))
        body = bytearray()
        while len(body) <= limit:
            chunk = request.read(min(CHUNK, limit + 1 - len(body)))
            if not chunk:
                break
            body += chunk
        if len(body) > limit:
            return _too_large(limit)
        # What HttpRequest.body does after reading, done here with a bounded read.
        request._body = bytes(body)
        request._stream = BytesIO(request._body)
        return self.get_response(request)

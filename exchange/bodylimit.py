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


class BodyLimitASGI:
    """ASGI wrapper: stop receiving an API request body one byte past the limit.

    Django's ASGI handler reads the whole body (to memory, then a temporary file) before any
    middleware runs, so without this a client could stream gigabytes to disk just to be told
    413. A declared ``Content-Length`` over the limit is answered at once; an undeclared
    (chunked) body is cut off at limit + 1 bytes, which ``BodyLimitMiddleware`` then refuses.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith("/api/"):
            return await self.app(scope, receive, send)
        limit = settings.BOURSE_MAX_BODY_BYTES
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit, headers.get(b"x-request-id", b"").decode("latin-1"))
        received = 0

        async def bounded_receive():
            nonlocal received
            if received > limit:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if received + len(body) > limit:
                    keep = limit + 1 - received
                    received = limit + 1
                    return {"type": "http.request", "body": body[:keep], "more_body": False}
                received += len(body)
            return message

        return await self.app(scope, bounded_receive, send)

    @staticmethod
    async def _refuse(send, limit: int, supplied_request_id: str):
        import json
        import uuid

        from .middleware import _ACCEPTABLE

        # Answered before Django, so the request-id middleware never sees it: same rule here.
        request_id = supplied_request_id if _ACCEPTABLE.match(supplied_request_id) else uuid.uuid4().hex
        problem = errors.PayloadTooLarge(f"Request bodies are limited to {limit} bytes.").as_problem(request_id)
        body = json.dumps(problem).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()), (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})

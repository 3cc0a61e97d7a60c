"""Request-id middleware: every response carries ``X-Request-ID``.

A client's own id is echoed when it is a sane token (so it can correlate its logs with
ours); otherwise, or when absent, a fresh one is generated.
"""
import logging
import re
import time
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .context import request_id_var

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"\A[A-Za-z0-9._:\-]{1,128}\Z")


def _request_id(request) -> str:
    supplied = request.headers.get(HEADER, "")
    return supplied if _ACCEPTABLE.match(supplied) else uuid.uuid4().hex


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request.request_id = _request_id(request)
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = request.request_id
        return response

    async def __acall__(self, request):
        request.request_id = _request_id(request)
        token = request_id_var.set(request.request_id)
        try:
            response = await self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = request.request_id
        return response


class ContentSecurityPolicyMiddleware:
    """``Content-Security-Policy`` (``BOURSE_CONTENT_SECURITY_POLICY``) on every HTML page —
    the console and the API docs — unless a view set its own. An empty setting sends none."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _add(response):
        from django.conf import settings

        policy = getattr(settings, "BOURSE_CONTENT_SECURITY_POLICY", "")
        if policy and response.get("Content-Type", "").startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._add(self.get_response(request))

    async def __acall__(self, request):
        return self._add(await self.get_response(request))


class MetricsMiddleware:
    """Counts every HTTP response and its latency by route pattern (never the raw path: the
    label set stays bounded), method and status (``exchange.metrics``), and writes the access
    log line (logger ``bourse.access``, JSON like every line, with the request id) unless
    ``BOURSE_ACCESS_LOG`` is off. Outermost, so the time includes the other middleware."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _record(request, response, started: float) -> None:
        from . import metrics

        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "<unmatched>"
        method = request.method if request.method in _METHODS else "OTHER"
        elapsed = time.perf_counter() - started
        metrics.HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        metrics.HTTP_LATENCY.labels(route, method).observe(elapsed)
        if _access_log_on():
            from .clientip import client_ip

            access_log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"method": request.method, "path": request.path, "route": route, "status": response.status_code,
                       "duration_ms": round(elapsed * 1000, 3), "client": client_ip(request),
                       "bytes": len(response.content) if not response.streaming else None,
                       "request_id": getattr(request, "request_id", None)},
            )

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._record(request, response, started)
        return response

    async def __acall__(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        self._record(request, response, started)
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
access_log = logging.getLogger("bourse.access")


def _access_log_on() -> bool:
    from django.conf import settings

    return settings.BOURSE_ACCESS_LOG and access_log.isEnabledFor(logging.INFO)

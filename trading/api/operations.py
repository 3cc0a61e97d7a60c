"""The operator's endpoints: ``/readyz`` (readiness per role, JSON, 503 when a required part
is down) and ``/metrics`` (Prometheus text, for allowed addresses or the bearer token only).
Neither is part of the public API (no OpenAPI entry); docs/operations.md describes both."""
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from exchange import clientip, errors, metrics
from exchange.problems import problem_response

from .. import operations


@require_GET
def readyz(request):
    report = operations.readiness()
    response = JsonResponse(report, status=200 if report["status"] == "ok" else 503)
    response._has_been_logged = True  # type: ignore[attr-defined]  # a 503 here is an answer, not a server error for django.request to log
    return response


class _ReadinessCollector:
    """Collects the readiness report's gauges when Prometheus scrapes."""

    def collect(self):
        return operations.metric_families(operations.readiness())


@require_GET
def metrics_view(request):
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = bool(request.META.get("HTTP_X_FORWARDED_FOR")) and not clientip.is_trusted_proxy(peer)
    if not metrics.allowed(
        clientip.client_ip(request), request.headers.get("Authorization", ""), forwarded_by_untrusted=forwarded,
        allow=settings.BOURSE_METRICS_ALLOW, token=settings.BOURSE_METRICS_TOKEN,
    ):
        return problem_response(errors.PermissionDenied(
            "The metrics endpoint is internal: scrape it from an address in BOURSE_METRICS_ALLOW or with "
            "'Authorization: Bearer' and BOURSE_METRICS_TOKEN."
        ))
    body, content_type = metrics.exposition([_ReadinessCollector()])
    return HttpResponse(body, content_type=content_type)

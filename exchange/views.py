"""Project-level endpoints: server time and health checks."""
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from . import wire
from .apiview import BourseApi
from .schema import problem_responses

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TimeApi(BourseApi):
    @extend_schema(
        operation_id="time_get",
        summary="Get the server time",
        description=(
            "The server clock, as RFC 3339 UTC and as Unix epoch milliseconds (`epoch_ms`): sign requests "
            "against it when the client clock drifts."
        ),
        tags=["market data"],
        auth=[],
        responses={
            200: inline_serializer(
                "ServerTime", {"server_time": serializers.CharField(), "epoch_ms": serializers.IntegerField()}
            ),
            **problem_responses(),
        },
    )
    def get(self, request):
        now_ns = time.time_ns()
        moment = EPOCH + timedelta(microseconds=now_ns // 1000)
        return Response({"server_time": wire.timestamp(moment), "epoch_ms": now_ns // 1_000_000})


def healthz(request):
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the database (and Redis, when configured) answer."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 -- any failure means not ready; the reason goes to the caller
        checks["database"] = f"error: {exc.__class__.__name__}"
    if settings.REDIS_URL:
        try:
            import redis

            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1).ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001 -- as for the database
            checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)

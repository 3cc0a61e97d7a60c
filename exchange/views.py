"""Project-level endpoints: server time and liveness (readiness: trading.api.operations)."""
import time
from datetime import UTC, datetime, timedelta

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

"""How signed requests appear in the OpenAPI document: four API-key headers, all required
together (one security requirement naming the four schemes)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension

_DESCRIPTIONS = {
    "ApiKey": ("X-API-Key", "The API key id (`bk_…`)."),
    "ApiTimestamp": ("X-API-Timestamp", "Unix epoch milliseconds; accepted within the window (default 5000 ms, "
                     "`X-API-Window` up to 60000) and at most 1000 ms ahead of the server."),
    "ApiNonce": ("X-API-Nonce", "16-64 characters of `A-Za-z0-9_-`, unique per key within the window."),
    "ApiSignature": ("X-API-Signature", "base64 HMAC-SHA256 (secret) or Ed25519 signature of "
                     "`timestamp\\nnonce\\nMETHOD\\npath\\nquery\\nsha256hex(body)`; see docs/signing.md."),
}


class ApiKeySignatureScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = list(_DESCRIPTIONS)

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": header, "description": description}
            for header, description in _DESCRIPTIONS.values()
        ]


# --- Pieces every signed endpoint's ``extend_schema`` uses -----------------------------------
from drf_spectacular.types import OpenApiTypes  # noqa: E402
from drf_spectacular.utils import OpenApiExample, OpenApiParameter  # noqa: E402

# Responses to requests that passed authentication (and so counted against the key).
_COUNTED = [200, 201, 202, 400, 403, 404, 409, 422, 429]
RATE_LIMIT_HEADERS = [
    OpenApiParameter(
        "RateLimit-Policy", OpenApiTypes.STR, OpenApiParameter.HEADER, response=_COUNTED,
        description='The budgets that apply to the key, e.g. `"key";q=1200;w=60, "orders";q=50;w=10` '
        "(q requests per w seconds).",
    ),
    OpenApiParameter(
        "RateLimit", OpenApiTypes.STR, OpenApiParameter.HEADER, response=_COUNTED,
        description='What is left of the budgets this request used, e.g. `"key";r=1187;t=41` '
        "(r remaining, t seconds until the window resets).",
    ),
    OpenApiParameter(
        "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429],
        description="Seconds to wait before retrying.",
    ),
]


def _problem(code, status, title, detail, **extra):
    return {"type": f"/docs/errors#{code}", "title": title, "status": status, "detail": detail, "code": code,
            "request_id": "5f0c6a1e2b7d4c9e8a3f1b2c4d6e8f0a", **extra}


AUTH_ERROR_EXAMPLES = [
    OpenApiExample(
        "invalid_credentials", status_codes=["401"], response_only=True, media_type="application/problem+json",
        value=_problem("invalid_credentials", 401, "Invalid credentials", "Unknown API key or wrong signature."),
    ),
    OpenApiExample(
        "timestamp_out_of_window", status_codes=["401"], response_only=True, media_type="application/problem+json",
        value=_problem("timestamp_out_of_window", 401, "Timestamp out of window",
                       "Timestamp 1795456794000 is outside [1795456800000, 1795456806000] (window 5000 ms); "
                       "check the client clock.",
                       server_time="2026-11-23T18:00:05.123456Z", server_epoch_ms=1795456805123),
    ),
    OpenApiExample(
        "permission_denied", status_codes=["403"], response_only=True, media_type="application/problem+json",
        value=_problem("permission_denied", 403, "Permission denied",
                       "This endpoint needs the 'read' scope; the key has trade.", required_scope="read"),
    ),
    OpenApiExample(
        "rate_limited", status_codes=["429"], response_only=True, media_type="application/problem+json",
        value=_problem("rate_limited", 429, "Rate limited",
                       "Rate limit 'key' allows 1200 requests per 60 s; retry in 41 s.", policy="key"),
    ),
]

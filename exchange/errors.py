"""Domain errors: one ``BourseError`` base with a stable ``code``.

Services raise these; each transport maps them once (REST: ``exchange.problems``; the
WebSocket consumer and the FIX gateway do the same with their own framing). Every subclass
registers itself in ``CATALOGUE``, from which the docs' error catalogue is generated, so a
code cannot exist in the code and be missing from the docs.
"""
from __future__ import annotations

CATALOGUE: dict[str, type[BourseError]] = {}


def type_uri(code: str) -> str:
    """The problem ``type`` of ``code``: its section of the served error catalogue (docs/errors),
    absolute when ``BOURSE_PUBLIC_URL`` names the public origin, else relative to the API's host."""
    from django.conf import settings

    return f"{getattr(settings, 'BOURSE_PUBLIC_URL', '')}/docs/errors#{code}"


class BourseError(Exception):
    """A refusal with a stable machine-readable ``code`` and the data to explain it.

    ``errors`` lists field-level problems: dicts with ``field``, ``code``, ``message`` and,
    for filters, ``allowed``. ``extra`` carries additional members of the problem body
    (e.g. ``server_time``).
    """

    code = "error"
    status = 400
    title = "Error"
    description = ""
    rest = True  # False: only a non-HTTP transport (WebSocket) raises it; not a REST response
    # Members this code adds to the problem body (``extra``), as JSON Schemas: the OpenAPI
    # ``Problem`` schema, the AsyncAPI error frame and docs/errors.md are generated from them.
    extension_fields: dict[str, dict] = {}

    def __init__(self, detail: str | None = None, *, errors: list[dict] | None = None, **extra):
        self.detail = detail or self.title
        self.errors = errors or []
        self.extra = extra
        super().__init__(self.detail)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in CATALOGUE and CATALOGUE[cls.code].status != cls.status:
                raise TypeError(f"error code {cls.code!r} registered twice with different statuses")
            CATALOGUE.setdefault(cls.code, cls)

    def as_problem(self, request_id: str | None = None) -> dict:
        body = {
            "type": type_uri(self.code),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "request_id": request_id,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class ValidationError(BourseError):
    code = "validation_error"
    status = 400
    title = "Validation error"
    description = (
        "Malformed JSON or fields. `errors` lists each field with its own code; market filter "
        "failures (`tick_size`, `lot_size`, `min_quantity`, `min_notional`) and market bounds "
        "(`max_price`, `max_quantity`, `max_notional`) name the allowed value in `allowed`; "
        "`not_storable` is an amount the database cannot hold exactly; `unknown_parameter` a "
        "query parameter the operation does not take; `in_past` / `too_far` an `expire_time` "
        "outside the allowed window; on an amend, `at_or_below_filled` a `quantity` that does "
        "not exceed the filled quantity and `post_only_would_cross` a post-only order's new "
        "`price` that would take liquidity."
    )

    @classmethod
    def field(cls, field: str, code: str, message: str, **more) -> ValidationError:
        return cls(message, errors=[{"field": field, "code": code, "message": message, **more}])


class BadRequest(BourseError):
    code = "bad_request"
    status = 400
    title = "Bad request"
    description = (
        "The request could not be taken at all, before any operation looked at it: bytes that "
        "are not HTTP/1.1, a request line and headers over 16 KiB, a header name or value the "
        "server will not pass on, a path or query string that is not ASCII (the server answers "
        "these and closes the connection), a `Host` header the deployment does not serve "
        "(`ALLOWED_HOSTS`), or another request Django refuses as malformed or suspicious. "
        "Nothing was done."
    )


class NotFound(BourseError):
    code = "not_found"
    status = 404
    title = "Not found"
    description = "No such resource, or it belongs to another account (never 403)."


class MethodNotAllowed(BourseError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"
    description = "The resource exists but does not accept this HTTP method."


class UnsupportedMediaType(BourseError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"
    description = "Request bodies must be `application/json`."


class PayloadTooLarge(BourseError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"
    description = (
        "The request body is over the size limit (`BOURSE_MAX_BODY_BYTES`, 64 KiB). A declared "
        "`Content-Length` over it is refused before any of the body is read, a chunked body as "
        "soon as it passes it; the connection is then closed."
    )


class RequestTimeout(BourseError):
    code = "request_timeout"
    status = 408
    title = "Request timeout"
    description = (
        "The request did not arrive whole (headers and body) within `BOURSE_HTTP_REQUEST_TIMEOUT_S` "
        "(10 s) of the connection opening or of the previous response; the connection is closed."
    )


class InsufficientBalance(BourseError):
    code = "insufficient_balance"
    status = 422
    title = "Insufficient balance"
    description = "The account's available balance does not cover the operation."
    extension_fields = {
        "asset": {"type": "string", "description": "The asset that is short (e.g. `USD`)."},
        "needed": {"type": "string", "description": "The amount the operation needs, a decimal string in the asset's scale."},
        "available": {"type": "string", "description": "The available amount, a decimal string in the asset's scale "
                      "(when the available bucket is short)."},
        "locked": {"type": "string", "description": "The locked amount, a decimal string in the asset's scale "
                   "(when releasing more than is locked)."},
    }


class AssetNotFound(BourseError):
    code = "asset_not_found"
    status = 422
    title = "Unknown asset"
    description = "The asset code does not exist."


class InvalidAmount(BourseError):
    code = "invalid_amount"
    status = 422
    title = "Invalid amount"
    description = "An amount is not positive or has more decimals than its asset allows."


class MarketNotFound(BourseError):
    code = "market_not_found"
    status = 422
    title = "Market not found"
    description = "The market symbol does not exist."


class MarketHalted(BourseError):
    code = "market_halted"
    status = 422
    title = "Market halted"
    description = "The market is halted; it accepts no new orders."


class ServerError(BourseError):
    code = "internal_error"
    status = 500
    title = "Internal server error"
    description = "An unexpected error; the request id identifies it in the server logs."


class ServiceUnavailable(BourseError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"
    description = (
        "A dependency (database, Redis) is not reachable; nothing was changed. Retry after "
        "`Retry-After` seconds (the same request, with a new nonce). A change that was committed "
        "before a dependency failed is never answered this way: an order or cancel is answered "
        "202 with the order, as when the engine has not answered yet."
    )
    RETRY_AFTER_S = 1

    def __init__(self, detail: str | None = None, *, retry_after: int = RETRY_AFTER_S, **extra):
        super().__init__(detail, **extra)
        self.wait = max(1, int(retry_after))  # the problem handler turns ``wait`` into Retry-After


def dependency_failure(exc: BaseException) -> ServiceUnavailable | None:
    """``ServiceUnavailable`` for an exception that means a dependency is down (the database
    refusing or dropping connections, Redis unreachable); None for anything else (a bug stays
    a 500 with its traceback in the log)."""
    from django.db import InterfaceError, OperationalError

    kinds: tuple = (OperationalError, InterfaceError)
    try:
        import redis

        kinds += (redis.ConnectionError, redis.TimeoutError)
    except ImportError:  # pragma: no cover - redis is a requirement
        pass
    if isinstance(exc, kinds):
        return ServiceUnavailable("A dependency (database or Redis) is not reachable; retry shortly.")
    return None


# --- Authentication, authorisation and rate limits (raised by ``apikeys`` and
# ``exchange.ratelimit``). Credential failures are 401, refusals of a verified key 403.


class MissingCredentials(BourseError):
    code = "missing_credentials"
    status = 401
    title = "Missing credentials"
    description = (
        "The endpoint needs a signed request and one or more of `X-API-Key`, `X-API-Timestamp`, "
        "`X-API-Nonce`, `X-API-Signature` is absent; `errors` names each missing header."
    )


class InvalidCredentials(BourseError):
    code = "invalid_credentials"
    status = 401
    title = "Invalid credentials"
    description = (
        "Unknown key or wrong signature (deliberately not distinguished), or a credential header "
        "that is malformed (`errors` names the header: e.g. a nonce outside `A-Za-z0-9_-`, a "
        "non-integer timestamp, a window outside 1-60000, a signature that is not base64)."
    )


class TimestampOutOfWindow(BourseError):
    code = "timestamp_out_of_window"
    status = 401
    title = "Timestamp out of window"
    description = (
        "`X-API-Timestamp` is older than the window or more than 1 s ahead of the server clock; "
        "the body carries `server_time` and `server_epoch_ms` to resynchronise."
    )
    extension_fields = {
        "server_time": {"type": "string", "format": "date-time", "description": "The server's clock (RFC 3339, UTC)."},
        "server_epoch_ms": {"type": "integer", "description": "The server's clock in Unix epoch milliseconds."},
    }


class NonceReused(BourseError):
    code = "nonce_reused"
    status = 401
    title = "Nonce reused"
    description = "This key already used this nonce inside the window (a replayed request)."


class ReplayGuardReset(BourseError):
    code = "replay_guard_reset"
    status = 401
    title = "Replay guard reset"
    description = (
        "The replay guard's store lost its memory (Redis restarted without persistence, was "
        "flushed, or evicted the guard's data) after this request was signed, so the server cannot "
        "tell whether it was already used. Sign it again with a fresh timestamp and nonce."
    )


class KeyRevoked(BourseError):
    code = "key_revoked"
    status = 401
    title = "Key revoked"
    description = (
        "The key was revoked (reported only once the signature verified). On an open WebSocket "
        "connection: an `error` frame, then close code 4401; on a FIX session: Logout with `Text` "
        "starting with the code (docs/signing.md, open sessions)."
    )


class KeyExpired(BourseError):
    code = "key_expired"
    status = 401
    title = "Key expired"
    description = (
        "The key is past its expiry (reported only once the signature verified). On an open WebSocket "
        "connection: an `error` frame, then close code 4401; on a FIX session: Logout with `Text` "
        "starting with the code (docs/signing.md, open sessions)."
    )


class OwnerDeactivated(BourseError):
    code = "owner_deactivated"
    status = 403
    title = "Owner deactivated"
    description = (
        "The user owning the key's account is deactivated (the console's Active flag is off): "
        "every key of that user is refused, and its open WebSocket and FIX sessions are closed, "
        "until an operator reactivates the user. WebSocket: close code 4403; FIX: Logout `owner_deactivated: ...`."
    )


class PermissionDenied(BourseError):
    code = "permission_denied"
    status = 403
    title = "Permission denied"
    description = (
        "The key lacks the scope the request needs (`read` for GET/HEAD, `trade` to submit or cancel; FIX "
        "needs `trade`, WebSocket `read`); `required_scope` names it. On an open WebSocket connection: an "
        "`error` frame, then close code 4403; on a FIX session: Logout with `Text` starting with the code "
        "(docs/signing.md, open sessions)."
    )
    extension_fields = {
        "required_scope": {"type": "string", "enum": ["read", "trade"], "description": "The scope the endpoint needs."},
    }


class IpNotAllowed(BourseError):
    code = "ip_not_allowed"
    status = 403
    title = "IP address not allowed"
    description = (
        "The request's source address is outside the key's IP allowlist. On an open WebSocket "
        "connection: an `error` frame, then close code 4403; on a FIX session: Logout with `Text` "
        "starting with the code (docs/signing.md, open sessions)."
    )


class RateLimited(BourseError):
    code = "rate_limited"
    status = 429
    title = "Rate limited"
    description = (
        "A rate limit is exhausted (`policy` names it: `key`, `orders`, `ip`, or `auth_failures` "
        "after repeated authentication failures from one address); retry after `Retry-After` seconds."
    )
    extension_fields = {
        "policy": {"type": "string", "enum": ["key", "orders", "ip", "auth_failures", "ws_messages"],
                   "description": "The exhausted budget (docs/rate-limits.md; `ws_messages`: WebSocket only)."},
    }

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra):
        super().__init__(detail, **extra)
        self.wait = max(1, int(retry_after))  # the problem handler turns ``wait`` into Retry-After


class DuplicateClientOrderId(BourseError):
    code = "duplicate_client_order_id"
    status = 409
    title = "Duplicate client order id"
    description = "The `client_order_id` was already used by this account with different parameters."


class OrderClosed(BourseError):
    code = "order_closed"
    status = 409
    title = "Order closed"
    description = "The order is already filled, cancelled or rejected (or closed before the cancel reached the engine)."


class SessionActive(BourseError):
    code = "session_active"
    status = 409
    title = "Session active"
    rest = False
    description = (
        "FIX only: the key already has a logged-on session (one per key, across gateway processes). "
        "The new Logon gets a Logout with `Text` `session_active: ...`; the first session is unaffected. "
        "Audited as `auth.failed` (channel `fix`)."
    )


# --- WebSocket protocol (/ws/v1; docs/websocket.md) ----------------------------------------
class InvalidMessage(BourseError):
    code = "invalid_message"
    status = 400
    rest = False
    title = "Invalid message"
    description = "A WebSocket frame that is not a JSON object (malformed JSON, a binary frame, an array)."


class UnknownOp(BourseError):
    code = "unknown_op"
    status = 400
    rest = False
    title = "Unknown operation"
    description = (
        "The WebSocket `op` is missing or not one of `auth`, `subscribe`, `unsubscribe`, `ping`, `place_order`, "
        "`amend_order`, `cancel_order`, `cancel_all`, `cancel_after`."
    )


class UnknownChannel(BourseError):
    code = "unknown_channel"
    status = 400
    rest = False
    title = "Unknown channel"
    description = (
        "A WebSocket channel name that does not exist: not `book:`/`trades:`/`ticker:` followed by an "
        "existing market symbol, nor `orders`, `fills`, `balances`. `errors` names each one."
    )


class NotAuthenticated(BourseError):
    code = "not_authenticated"
    status = 401
    rest = False
    title = "Not authenticated"
    description = (
        "A private WebSocket channel (`orders`, `fills`, `balances`) or an order operation (`place_order`, ...) "
        "needs a successful `auth` first."
    )


class AlreadyAuthenticated(BourseError):
    code = "already_authenticated"
    status = 409
    rest = False
    title = "Already authenticated"
    description = "The WebSocket connection is already authenticated; open another connection for another key."


class TooManySubscriptions(BourseError):
    code = "too_many_subscriptions"
    status = 429
    rest = False
    title = "Too many subscriptions"
    description = "The subscription would exceed the per-connection limit (`limit` names it); nothing was subscribed."
    extension_fields = {
        "limit": {"type": "integer", "description": "The limit that was reached."},
    }


class TooManyConnections(BourseError):
    code = "too_many_connections"
    status = 429
    rest = False
    title = "Too many connections"
    description = (
        "The API key or the source address already holds the most WebSocket connections allowed "
        "(`limit` names it); the connection is closed with code 4001."
    )
    extension_fields = {
        "limit": {"type": "integer", "description": "The limit that was reached."},
    }


class ResyncRequired(BourseError):
    code = "resync_required"
    status = 410
    rest = False
    title = "Resync required"
    description = (
        "A WebSocket `since` points before the retained history (or more events back than one replay "
        "sends): read the current state over REST (`GET /orders`, `/fills`, `/balances`) and subscribe "
        "again without `since`."
    )
    extension_fields = {
        "channel": {"type": "string", "description": "The channel concerned (its subscription was dropped)."},
        "last": {"type": "integer", "description": "The channel's latest sequence."},
    }

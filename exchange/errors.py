"""Domain errors: one ``BourseError`` base with a stable ``code``.

Services raise these; each transport maps them once (REST: ``exchange.problems``; the
WebSocket consumer and the FIX gateway do the same with their own framing). Every subclass
registers itself in ``CATALOGUE``, from which the docs' error catalogue is generated, so a
code cannot exist in the code and be missing from the docs.
"""
from __future__ import annotations

CATALOGUE: dict[str, type["BourseError"]] = {}


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
            "type": f"/docs/errors#{self.code}",
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
        "failures (`tick_size`, `lot_size`, `min_quantity`, `min_notional`) name the allowed value."
    )

    @classmethod
    def field(cls, field: str, code: str, message: str, **more) -> "ValidationError":
        return cls(message, errors=[{"field": field, "code": code, "message": message, **more}])


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
    description = "The request body is over the size limit."


class InsufficientBalance(BourseError):
    code = "insufficient_balance"
    status = 422
    title = "Insufficient balance"
    description = "The account's available balance does not cover the operation."


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
    description = "A dependency (database, Redis) is not reachable."

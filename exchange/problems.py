"""RFC 9457 problem details for the whole API.

``exception_handler`` is DRF's hook; ``problem_response`` renders any ``BourseError``;
``handler400``/``handler403``/``handler404``/``handler500`` cover requests that never
reached a DRF view (an API path never gets Django's HTML pages). Each maps
errors exactly once, so every refusal has the same shape and a stable ``code``.
"""
import logging
import sys

from django.http import JsonResponse
from rest_framework import exceptions as drf

from . import errors
from .context import request_id_var

log = logging.getLogger("bourse.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(error: errors.BourseError, headers: dict | None = None) -> JsonResponse:
    response = JsonResponse(
        error.as_problem(request_id_var.get()),
        status=error.status,
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_errors(detail, prefix="") -> list[dict]:
    """Flatten DRF's nested error detail into ``[{field, code, message}]``."""
    out = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out += _field_errors(value, f"{prefix}.{name}" if prefix and name else (name or prefix))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, (dict, list)) and not isinstance(item, drf.ErrorDetail):
                out += _field_errors(item, f"{prefix}[{index}]")
            else:
                out += _field_errors(item, prefix)
    else:
        code = getattr(detail, "code", None) or "invalid"
        out.append({"field": prefix or None, "code": code, "message": str(detail)})
    return out


def to_bourse_error(exc) -> errors.BourseError | None:
    """Translate DRF/Django exceptions into domain errors (None: not ours to handle)."""
    if isinstance(exc, errors.BourseError):
        return exc
    unavailable = errors.dependency_failure(exc)
    if unavailable is not None:
        log.warning("dependency unavailable: %s", exc)
        return unavailable
    if isinstance(exc, drf.ValidationError):
        field_errors = _field_errors(exc.detail)
        summary = "; ".join(
            f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in field_errors
        )
        return errors.ValidationError(summary or "Invalid request.", errors=field_errors)
    if isinstance(exc, drf.ParseError):
        return errors.ValidationError(f"Malformed JSON: {exc.detail}")
    if isinstance(exc, drf.UnsupportedMediaType):
        return errors.UnsupportedMediaType(str(exc.detail))
    if isinstance(exc, drf.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    if isinstance(exc, (drf.NotFound,)):
        return errors.NotFound()
    from django.http import Http404

    if isinstance(exc, Http404):
        return errors.NotFound()
    return None


def exception_handler(exc, context):
    error = to_bourse_error(exc)
    if error is None:
        if isinstance(exc, drf.APIException):
            # An APIException we do not map specifically still gets a problem body.
            error = errors.BourseError(str(exc.detail))
            error.status = exc.status_code
            error.code = exc.default_code
            error.title = exc.default_code.replace("_", " ").capitalize()
        else:
            return None  # unexpected: Django's handler500 renders it (and logs it)
    headers = {}
    wait = getattr(error, "wait", None) or getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = str(int(wait + 0.999))
    return problem_response(error, headers)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler400(request, exception=None):
    """Django's refusals before any view: a ``Host`` outside ``ALLOWED_HOSTS``
    (``DisallowedHost``), other ``SuspiciousOperation`` and ``BadRequest``."""
    if not _is_api(request):
        from django.views.defaults import bad_request

        return bad_request(request, exception)
    return problem_response(errors.BadRequest())


def handler403(request, exception=None):
    if not _is_api(request):
        from django.views.defaults import permission_denied

        return permission_denied(request, exception)
    return problem_response(errors.PermissionDenied("Permission denied."))


def handler404(request, exception=None):
    if not _is_api(request):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return problem_response(errors.NotFound(f"No resource at {request.path}."))


def handler500(request):
    if not _is_api(request):
        from django.views.defaults import server_error

        return server_error(request)
    # Django calls this while handling the exception (outside DRF: middleware, the verifier
    # in a middleware), so the exception is still at hand: a dependency that is down is a
    # 503 to retry, not a 500.
    exc = sys.exc_info()[1]
    unavailable = errors.dependency_failure(exc) if exc is not None else None
    if unavailable is not None:
        return problem_response(unavailable, {"Retry-After": str(unavailable.wait)})
    return problem_response(errors.ServerError("An unexpected error occurred."))

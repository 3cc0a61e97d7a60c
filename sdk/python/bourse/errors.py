"""BourseError: a refusal as an exception, carrying the RFC 9457 problem's fields."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BourseError", "FieldError", "GapError"]


@dataclass(frozen=True)
class FieldError:
    field: str | None
    code: str
    message: str
    allowed: str | None = None


class BourseError(Exception):
    """A request Bourse refused (REST problem+json, or a WebSocket error frame).

    ``code`` is the stable code from docs/errors.md (``insufficient_balance``, ``not_found``…),
    ``errors`` the per-field errors, ``problem`` the whole body (extra members such as
    ``server_epoch_ms``, ``policy``, ``required_scope`` or ``last`` are there)."""

    def __init__(self, status: int | None, code: str, detail: str, *, title: str = "", request_id: str | None = None,
                 errors: list[FieldError] | None = None, problem: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status or 'ws'} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.request_id = request_id
        self.errors = errors or []
        self.problem = problem or {}
        self.retry_after = retry_after

    @property
    def fields(self) -> list[str | None]:
        return [e.field for e in self.errors]

    def extension(self, name: str) -> Any:
        """A member the problem's code adds (docs/errors.md): ``needed``, ``available``,
        ``policy``, ``required_scope``, ``server_epoch_ms``, ``limit``…; None when absent."""
        return self.problem.get(name)

    @classmethod
    def from_problem(cls, status: int | None, body: Any, retry_after: float | None = None) -> BourseError:
        if not isinstance(body, dict) or "code" not in body:
            text = body if isinstance(body, str) else repr(body)
            return cls(status, "http_error", f"unexpected response: {text[:500]}", problem={}, retry_after=retry_after)
        errors = [FieldError(e.get("field"), str(e.get("code", "")), str(e.get("message", "")), e.get("allowed"))
                  for e in body.get("errors") or [] if isinstance(e, dict)]
        return cls(status if status is not None else body.get("status"), str(body["code"]),
                   str(body.get("detail") or body.get("message") or ""), title=str(body.get("title") or ""),
                   request_id=body.get("request_id"), errors=errors, problem=body, retry_after=retry_after)


class GapError(Exception):
    """A book update whose sequence is not the local book's + 1, or whose checksum differs."""

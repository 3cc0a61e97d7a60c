"""Per-request context (request id, source IP) available to services, logs and audit
without threading it through every call."""
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

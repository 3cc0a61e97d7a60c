"""Per-request context (request id, source IP) available to services, logs and audit
without threading it through every call."""
from contextvars import ContextVar
from dataclasses import dataclass

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# The client's address (``exchange.clientip.client_ip``: X-Forwarded-For only from trusted
# proxies), set per request by ``audit.middleware``; None outside a request.
source_ip_var: ContextVar[str | None] = ContextVar("source_ip", default=None)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a console ``user``, an ``apikey``, the ``system`` itself (Celery tasks,
    management commands, the engine), or an ``anonymous`` caller that failed to authenticate.

    ``id`` is the stable identifier (user pk, key id); ``label`` is what people search for
    (username, key id, task name) and is kept as it was at the time of the event.
    """

    kind: str
    id: str = ""
    label: str = ""

    @classmethod
    def user(cls, user) -> "Actor":
        return cls("user", str(user.pk), user.get_username())

    @classmethod
    def apikey(cls, key_id: str, label: str = "") -> "Actor":
        # The key id always shows: two traders' keys may both be labelled "demo".
        return cls("apikey", str(key_id), f"{label} ({key_id})" if label else str(key_id))

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls("system", "", label)

    @classmethod
    def anonymous(cls, label: str = "") -> "Actor":
        return cls("anonymous", "", label)


# Set by the audit middleware for signed-in console users, and by the API-key authenticator
# (REST, WebSocket, FIX) once a signature verified; None means "the system".
actor_var: ContextVar[Actor | None] = ContextVar("actor", default=None)

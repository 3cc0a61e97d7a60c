"""REST adapter over the verifier: DRF authentication, scope permissions, the private view base.

``ApiKeyAuthentication`` feeds the request's headers, method, path, raw query string,
body hash and source address (``exchange.clientip``) to ``verifier.verify_request``;
success gives ``request.auth`` = the ``ApiKey`` and ``request.user`` = its account's owner.
Each verified request is then counted against the key's ``key`` budget, so every
authenticated response carries the RateLimit headers, whatever its status.

Views subclass ``PrivateApi`` and set ``required_scope`` (what reading needs) and, when
they also write, ``write_scope``: a request's scope follows what it does, not how it is
spelled — GET, HEAD and OPTIONS read, every other method writes.
"""
from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from exchange import errors, ratelimit
from exchange.apiview import BourseApi
from exchange.clientip import client_ip
from exchange.context import Actor, actor_var

from . import signing, verifier
from .models import Scope


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        django_request = request._request
        headers = django_request.headers
        source_ip = client_ip(django_request)
        query = django_request.META.get("QUERY_STRING", "")
        counts_orders = _counts_orders(request, query)

        def budgets(key):
            # The key's request budget, and for an order submission the account's orders
            # budget, counted with the nonce in one round trip (``apikeys.gate``).
            if counts_orders and key.has_scope(counts_orders):
                return ((ratelimit.KEY, key.key_id), (ratelimit.ORDERS, str(key.account_id)))
            return ((ratelimit.KEY, key.key_id),)

        try:
            key, usages = verifier.verify_request_budgeted(
                key_id=headers.get("X-API-Key"),
                timestamp=headers.get("X-API-Timestamp"),
                nonce=headers.get("X-API-Nonce"),
                signature=headers.get("X-API-Signature"),
                window=headers.get("X-API-Window"),
                method=django_request.method,
                path=django_request.path,
                query=query,
                body_sha256=signing.body_sha256(django_request.body),
                source_ip=source_ip,
                budgets=budgets,
            )
        except errors.BourseError as exc:
            verifier.audit_refusal(exc, channel="api", source_ip=source_ip, key_id=headers.get("X-API-Key"))
            raise
        # Everything this request changes is audited as done by this key.
        actor_var.set(Actor.apikey(key.key_id, key.label))
        key_usage = usages[0]
        ratelimit.record(request, key_usage, announce=ratelimit.AUTHENTICATED_POLICIES)
        if key_usage.exceeded:
            raise ratelimit.refusal(key_usage)
        if len(usages) > 1:
            # Counted already; ``orders_rate_limit`` records it and refuses it where it always did.
            ratelimit.precounted(request, usages[1])
        return (key.account.owner, key)

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) and names the scheme for clients that look.
        return 'Bourse-Signature realm="api"'


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _counts_orders(request, query: str) -> str | None:
    """The scope an order submission needs when this request is one whose ``orders`` budget
    can be counted with its authentication: a view method marked by ``orders_rate_limit``,
    reached with no query string (so no query-parameter refusal can come between
    authentication and the count). None otherwise: then the decorator counts on its own."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    method = request._request.method
    handler = getattr(view, method.lower(), None) if view is not None and method else None
    if query or not getattr(handler, "counts_orders", False):
        return None
    return scope_for(view, method)


def scope_for(view, method: str) -> str:
    """The scope a request needs: the view's ``write_scope`` for a writing method when it has
    one, else its ``required_scope``. HEAD (and OPTIONS) need exactly what GET needs."""
    write_scope = getattr(view, "write_scope", None)
    if write_scope is not None and method.upper() not in READ_METHODS:
        return write_scope
    return view.required_scope


class HasScope(BasePermission):
    """Grants when the verified key carries the scope the request needs (``scope_for``);
    raises otherwise, so the refusal is ``permission_denied`` with the scope named rather
    than DRF's generic 403."""

    def has_permission(self, request, view):
        try:
            verifier.require_scope(request.auth, scope_for(view, request.method))
        except errors.PermissionDenied as exc:
            verifier.audit_refusal(exc, channel="api", source_ip=client_ip(request._request),
                                   key_id=request.auth.key_id)
            raise
        return True


class PrivateApi(BourseApi):
    """Base for every signed endpoint: authentication by API key, then the scope check."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    required_scope: str = Scope.READ
    write_scope: str | None = None  # the scope of POST/PUT/PATCH/DELETE, when the view writes

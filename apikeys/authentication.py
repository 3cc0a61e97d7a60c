"""REST adapter over the verifier: DRF authentication, scope permissions, the private view base.

``ApiKeyAuthentication`` feeds the request's headers, method, path, raw query string,
body hash and source address (``exchange.clientip``) to ``verifier.verify_request``;
success gives ``request.auth`` = the ``ApiKey`` and ``request.user`` = its account's owner.
Each verified request is then counted against the key's ``key`` budget, so every
authenticated response carries the RateLimit headers, whatever its status.

Views subclass ``PrivateApi`` and set ``required_scope``.
"""
from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from audit.services import audit_auth_failure
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
        try:
            key = verifier.verify_request(
                key_id=headers.get("X-API-Key"),
                timestamp=headers.get("X-API-Timestamp"),
                nonce=headers.get("X-API-Nonce"),
                signature=headers.get("X-API-Signature"),
                window=headers.get("X-API-Window"),
                method=django_request.method,
                path=django_request.path,
                query=django_request.META.get("QUERY_STRING", ""),
                body_sha256=signing.body_sha256(django_request.body),
                source_ip=source_ip,
            )
        except errors.BourseError as exc:
            if exc.status in (401, 403):  # throttled sources (429) are already counted
                audit_auth_failure(source_ip, headers.get("X-API-Key"), exc.code, channel="api")
            raise
        # Everything this request changes is audited as done by this key.
        actor_var.set(Actor.apikey(key.key_id, key.label))
        ratelimit.consume_for_request(
            request, ratelimit.KEY, key.key_id, announce=ratelimit.AUTHENTICATED_POLICIES
        )
        return (key.account.owner, key)

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) and names the scheme for clients that look.
        return 'Bourse-Signature realm="api"'


class HasScope(BasePermission):
    """Grants when the verified key carries ``view.required_scope``; raises otherwise, so
    the refusal is ``permission_denied`` with the scope named rather than DRF's generic 403."""

    def has_permission(self, request, view):
        verifier.require_scope(request.auth, view.required_scope)
        return True


class PrivateApi(BourseApi):
    """Base for every signed endpoint: authentication by API key, then the scope check."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]

    @property
    def required_scope(self) -> str:
        """The scope a key needs for this endpoint: ``read`` unless a view overrides it."""
        return Scope.READ

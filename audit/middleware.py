"""Puts who is asking, and from where, into ``exchange.context`` for ``audit_record``.

Source IP: ``exchange.clientip.client_ip`` (X-Forwarded-For only from trusted proxies).
Actor: the signed-in console user, if any. API requests start with no actor; the API-key
authenticator sets ``actor_var`` once a signature verified. Both are reset when the
response leaves, so nothing leaks into the next request served by the same thread.
"""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from exchange.clientip import client_ip
from exchange.context import Actor, actor_var, source_ip_var


class AuditContextMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        user = getattr(request, "user", None)
        actor = Actor.user(user) if user is not None and user.is_authenticated else None
        ip_token, actor_token = source_ip_var.set(client_ip(request) or None), actor_var.set(actor)
        try:
            return self.get_response(request)
        finally:
            source_ip_var.reset(ip_token)
            actor_var.reset(actor_token)

    async def __acall__(self, request):
        user = await request.auser() if hasattr(request, "auser") else None
        actor = Actor.user(user) if user is not None and user.is_authenticated else None
        ip_token, actor_token = source_ip_var.set(client_ip(request) or None), actor_var.set(actor)
        try:
            return await self.get_response(request)
        finally:
            source_ip_var.reset(ip_token)
            actor_var.reset(actor_token)

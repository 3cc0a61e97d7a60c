"""Console-only middleware: sessions, CSRF, the signed-in user and messages, skipped for the API.

The REST API under ``/api/`` authenticates every request by its signature (``apikeys``) and
never reads a session, a CSRF token, ``request.user`` from a cookie or a flash message; those
exist for the admin console and the docs site. Each class here is Django's own middleware
(a subclass, so Django's checks still find it in ``MIDDLEWARE``) that passes an ``/api/``
request straight through: no session look-up, no CSRF cookie or check, no lazy user, no
message storage. Everything else gets Django's behaviour unchanged.

A request under ``/api/`` therefore never acts as a console user: its actor in the audit
trail is its API key once the signature verified (``apikeys.authentication``), or none.
"""
from collections.abc import Callable

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


class _ConsoleOnly:
    get_response: Callable  # Django's MiddlewareMixin sets it

    def __call__(self, request):
        if is_api(request):
            return self.get_response(request)  # a coroutine in the async chain: the caller awaits it
        return super().__call__(request)  # type: ignore[misc]


class ConsoleSessionMiddleware(_ConsoleOnly, SessionMiddleware):
    pass


class ConsoleCsrfViewMiddleware(_ConsoleOnly, CsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        if is_api(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class ConsoleAuthenticationMiddleware(_ConsoleOnly, AuthenticationMiddleware):
    pass


class ConsoleMessageMiddleware(_ConsoleOnly, MessageMiddleware):
    pass

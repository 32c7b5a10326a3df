"""WebSocket authentication: a DRF token for programs, the session cookie for pages.

Programs send `Authorization: Token <key>` or `?token=<key>`. Pages rely on the session cookie, which a
browser attaches to any page's WebSocket, so a cookie-authenticated socket must come with an Origin
header naming one of our hosts (the cross-site WebSocket hijacking defence). A socket that offers a token
with a foreign Origin is refused as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

# An ASGI 3 application, taking scopes as this middleware passes them on (plain dicts).
ScopeApplication = Callable[[Any, ASGIReceiveCallable, ASGISendCallable], Awaitable[Any]]


def allowed_origin_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def token_from_scope(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = value.decode("latin1")
            scheme, _, key = header.partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    keys = query.get("token")
    return keys[0] if keys and keys[0] else None


def origin_from_scope(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            origin: str = value.decode("latin1")
            return origin
    return None


@database_sync_to_async
def user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    try:
        token = Token.objects.select_related("user").get(key=key)
    except Token.DoesNotExist:
        return AnonymousUser()
    return token.user if token.user.is_active else AnonymousUser()


class WebSocketAuthMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # The stack is an ASGI 3 application; its stub's return type also admits ASGI 2 ones.
        self.session_stack = cast(ScopeApplication, AuthMiddlewareStack(inner))
        self.origins = OriginValidator(inner, allowed_origin_hosts())

    def origin_ok(self, origin: str | None) -> bool:
        return origin is not None and self.origins.valid_origin(urlparse(origin))

    # `scope` is an ASGI scope, a dict whose keys depend on the protocol; it is passed on with two keys added.
    async def __call__(self, scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Any:
        origin = origin_from_scope(scope)
        key = token_from_scope(scope)
        if key is not None:
            if origin is not None and not self.origin_ok(origin):
                return await WebsocketDenier()(scope, receive, send)
            scope = dict(scope, user=await user_for_token(key), auth_method="token")
            return await self.inner(scope, receive, send)
        if not self.origin_ok(origin):
            return await WebsocketDenier()(scope, receive, send)
        return await self.session_stack(dict(scope, auth_method="session"), receive, send)

"""Correct ``Allow`` headers on OPTIONS answers.

Litestar (2.25) builds a path's automatic OPTIONS handler when the path's first handler is
registered and never updates it, so ``OPTIONS /api/v1/namespace/x/`` listed only ``GET,
OPTIONS`` although the path also takes POST, PUT and DELETE. This middleware rewrites the header
of those 204 answers from the route the request matched.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


class AllowHeader(ASGIMiddleware):
    """Set ``Allow`` on OPTIONS answers to every method of the matched route."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self._methods: dict[str, bytes] | None = None

    def _allowed(self, scope: Scope) -> bytes | None:
        if self._methods is None:
            self._methods = {
                route.path_format: ", ".join(sorted(route.methods)).encode()
                for route in scope["litestar_app"].routes
                if hasattr(route, "methods")
            }
        return self._methods.get(str(scope.get("path_template", "")))

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if cast(HTTPScope, scope)["method"] != "OPTIONS":
            await next_app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 204:
                allowed = self._allowed(scope)
                if allowed is not None:
                    headers: list[Any] = [
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != b"allow"
                    ]
                    message["headers"] = [*headers, (b"allow", allowed)]
            await send(message)

        await next_app(scope, receive, send_with_allow)

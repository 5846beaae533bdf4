"""What conda-store's official client sends that a plain reading would refuse.

The client (``conda-store`` 2025.2.2) makes every URL end in ``/`` so that no redirect drops its
Authorization header, even when the URL has a query string: ``/api/v1/namespace/?page=2/``.
Read literally, the last parameter's value is ``2/``. This middleware drops that one trailing
``/`` from the query string before any handler parses it, for every route, so listings page
and filter for that client as they do for everyone else.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send


class TrailingSlashInQuery(ASGIMiddleware):
    """Strip one ``/`` (raw or ``%2F``-encoded) from the end of the query string."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        query: bytes = scope.get("query_string", b"")
        if query.endswith(b"/"):
            scope["query_string"] = query[:-1]
        elif query.upper().endswith(b"%2F"):
            scope["query_string"] = query[:-3]
        await next_app(scope, receive, send)

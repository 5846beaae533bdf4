"""What conda-store's official client sends that a plain reading would refuse.

The client (``conda-store`` 2025.2.2) makes every URL end in ``/`` so that no redirect drops its
Authorization header, even when the URL has a query string: ``/api/v1/namespace/?page=2/``.
Read literally, the last parameter's value is ``2/``. This middleware drops that one trailing
``/`` from the query string before any handler parses it, for every route, so listings page
and filter for that client as they do for everyone else.

Only a value with no other ``/`` loses its last one: ``page=2/`` and ``packages=numpy/`` are the
client's doing, while ``next=/api/v1/namespace/`` is a path that means what it says.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send


def without_client_slash(query: bytes) -> bytes:
    """``query`` without the ``/`` conda-store's client appends (see the module docstring)."""
    for slash in (b"/", b"%2F", b"%2f"):
        if query.endswith(slash):
            value = unquote_to_bytes(query[: -len(slash)].rpartition(b"&")[2].partition(b"=")[2])
            return query if b"/" in value else query[: -len(slash)]
    return query


class TrailingSlashInQuery(ASGIMiddleware):
    """Strip the ``/`` conda-store's client appends to the query string."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        query: bytes = scope.get("query_string", b"")
        stripped = without_client_slash(query)
        if stripped is not query:
            scope["query_string"] = stripped
        await next_app(scope, receive, send)

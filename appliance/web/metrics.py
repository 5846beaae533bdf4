"""``/metrics`` (Prometheus) and the middleware that counts and times every HTTP request.

Requests are labelled by their route template (``/api/v1/build/{build_id}/``), never the
raw path, so the number of series stays bounded; requests no route matched (404, 405) are
counted under ``<unmatched>``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from appliance.observability.exposition import render
from appliance.observability.metrics import HTTP_REQUESTS, observe_request
from appliance.web.settings import WebSettings
from appliance.web.status import StatusSource, cluster_snapshot

#: Route label of requests no route matched.
UNMATCHED = "<unmatched>"


class RequestMetrics(ASGIMiddleware):
    """Counts and times every HTTP request a route handles (by method, route template and
    status code)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = HTTP_500_INTERNAL_SERVER_ERROR

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_watch)
        finally:
            route = scope.get("path_template") or UNMATCHED
            method = cast(HTTPScope, scope)["method"]
            observe_request(method, route, status, time.perf_counter() - started)


async def count_unmatched(error: Exception, scope: Scope) -> None:
    """``after_exception`` hook: count requests that failed before reaching a route (no route
    for the path, or not for the method), which :class:`RequestMetrics` never sees."""
    if scope["type"] != ScopeType.HTTP or "route_handler" in scope:
        return
    status = error.status_code if isinstance(error, HTTPException) else 500
    method = cast(HTTPScope, scope)["method"]
    HTTP_REQUESTS.labels(method=method, route=UNMATCHED, status=str(status)).inc()


def metrics_handlers(
    source: StatusSource, settings: WebSettings, *, prefix: str, documented: bool
) -> list[HTTPRouteHandler]:
    """The ``<prefix>/metrics`` handler (see :mod:`appliance.web.probes` for ``documented``)."""

    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        snapshot = await cluster_snapshot(
            source,
            worker_timeout=settings.heartbeat_timeout,
            store_directory=settings.store_directory,
            timeout=settings.database_timeout,
        )
        accept = request.headers.get("accept", "")
        body, content_type = await asyncio.to_thread(render, snapshot, accept)
        # Given as a header: Litestar would append a second charset to a text/* media type.
        return Response(body, headers={"content-type": content_type})

    return [
        get(
            f"{prefix}/metrics",
            operation_id="getMetrics" if documented else "getMetricsAtRoot",
            include_in_schema=documented,
            summary="Prometheus metrics (text exposition format)",
            tags=["operations"],
        )(metrics)
    ]

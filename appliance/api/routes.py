"""Every API route group, as routers for the web app (mounted under the url_prefix)."""

from __future__ import annotations

from litestar import Router

from appliance.api.context import ApiContext
from appliance.api.dependencies import dependencies
from appliance.api.v1 import namespaces, status


def api_routers(context: ApiContext) -> list[Router]:
    """The REST API's routers: ``/api/v1`` and ``/api/v2``."""
    v1 = Router(
        path="/api/v1",
        route_handlers=[*status.HANDLERS, namespaces.router],
        dependencies=dependencies(context),
    )
    return [v1]

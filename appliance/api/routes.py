"""Every API route group, as routers for the web app (mounted under the url_prefix)."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.handlers import HTTPRouteHandler

from appliance.api import login
from appliance.api.context import ApiContext
from appliance.api.dependencies import dependencies
from appliance.api.envelope import ERROR_RESPONSES
from appliance.api.v1 import (
    accounts,
    admin,
    artifacts,
    builds,
    channels,
    environments,
    namespaces,
    settings,
    specification,
    status,
    tokens,
)
from appliance.api.v2 import environments as environments_v2
from appliance.services.operations import Installation


def document_errors(app: Litestar, prefix: str) -> None:
    """Document :data:`ERROR_RESPONSES` on every API operation under ``prefix`` (an operation's
    own ``responses`` win). Call before the OpenAPI schema is first generated."""
    for route in app.routes:
        if not route.path.startswith(prefix):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and handler.include_in_schema:
                handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}


def api_routers(context: ApiContext) -> list[Router]:
    """The REST API's routers: ``/api/v1`` and ``/api/v2``."""
    v1 = Router(
        path="/api/v1",
        route_handlers=[
            *status.HANDLERS,
            namespaces.router,
            environments.router,
            specification.router(context),
            builds.router,
            *artifacts.HANDLERS,
            *channels.HANDLERS,
            tokens.router,
            settings.router,
            *accounts.HANDLERS,
            admin.router(installation(context)),
        ],
        dependencies=dependencies(context),
    )
    v2 = Router(
        path="/api/v2",
        route_handlers=[environments_v2.router],
        dependencies=dependencies(context),
    )
    return [v1, v2]


def installation(context: ApiContext) -> Installation:
    """This host's Kiln for the admin routes: the data dir and the configuration file of the
    configuration the context was built from (without one, appliance.services.configuration
    uses the file the supervisor publishes, else the data dir's ``kiln_config.py``)."""
    return Installation(data_dir=context.authentication.data_dir, config_file=context.config_file)


def login_routers(context: ApiContext) -> list[Router]:
    """Logging in and out (``/login/``, ``/oauth_callback/``, ``/logout/``): conda-store's auth
    routes, at the url prefix itself rather than under ``/api``."""
    return [Router(path="/", route_handlers=login.HANDLERS, dependencies=dependencies(context))]

"""The web app: one factory, built from small configuration steps.

:func:`create_app` reads top to bottom as the list of what the web process serves. A new route
group (the REST API, the UI, the registry) is one more ``_configure_*`` step that appends its
handlers to the :class:`~litestar.config.app.AppConfig`: under ``settings.url_prefix`` through
:func:`_under_prefix`, or at the root for the registry's ``/v2/``.

Paths: ``/healthz``, ``/readyz`` and ``/metrics`` answer under ``CondaStoreServer.url_prefix``
and, when that is not ``/``, also at the root, so probes and scrapers work the same whether or
not they go through the reverse proxy that publishes the prefix. Only the prefixed copies are
in the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Litestar, Router
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.types import ControllerRouterHandler

from appliance import __version__
from appliance.api.context import ApiContext
from appliance.api.routes import api_routers, document_errors, login_routers
from appliance.config.loader import load_config
from appliance.db.status import StatusReader
from appliance.registry import for_registry_paths, registry_router
from appliance.ui.pages import ui_handlers
from appliance.web.allow import AllowHeader
from appliance.web.client_quirks import TrailingSlashInQuery
from appliance.web.docs import DocsPage, openapi_document
from appliance.web.errors import EXCEPTION_HANDLERS
from appliance.web.metrics import RequestMetrics, count_unmatched, metrics_handlers
from appliance.web.probes import probe_handlers
from appliance.web.settings import WebSettings
from appliance.web.status import StatusSource


def create_app(
    settings: WebSettings,
    status: StatusSource | None = None,
    *,
    api: ApiContext | None = None,
    route_handlers: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """The Litestar app of one web process.

    ``status`` is where probes and scrapes read the database's facts (default: a
    :class:`~appliance.db.status.StatusReader` on ``settings.database_url``); the app owns it
    and closes it at shutdown. ``api`` is what the REST API serves from (default: built from
    the configuration ``settings`` names, when ``settings.enable_api``,
    ``settings.enable_registry`` or ``settings.enable_ui``); the app owns it too.
    ``route_handlers`` are served under the url_prefix (tests use it).

    Nothing connects to the database here: a web process starts, and answers ``/healthz``,
    while PostgreSQL is still coming up.
    """
    if status is None:
        status = StatusReader(settings.database_url, timeout=settings.database_timeout)
    if api is None and (settings.enable_api or settings.enable_registry or settings.enable_ui):
        api = ApiContext.from_config(
            load_config(settings.config_file, settings.data_dir),
            database_url=settings.database_url,
        )
    config = AppConfig()
    _configure_errors(config)
    _configure_request_metrics(config)
    _configure_probes(config, settings, status)
    _configure_metrics(config, settings, status)
    _configure_api(config, settings, api)
    _configure_registry(config, settings, api)
    _configure_ui(config, settings, api)
    _configure_routes(config, settings, route_handlers)
    _configure_openapi(config, settings)
    _configure_shutdown(config, status, api)
    app = Litestar.from_config(config)
    if api is not None and settings.enable_api:
        document_errors(app, settings.under_prefix("/api/"))
    return app


def _configure_errors(config: AppConfig) -> None:
    """Domain and HTTP errors become conda-store's error envelope (appliance.web.errors)."""
    config.exception_handlers.update(EXCEPTION_HANDLERS)


def _configure_request_metrics(config: AppConfig) -> None:
    """Count and time every request, matched or not (kiln_http_requests_total, ...)."""
    config.middleware.append(RequestMetrics())
    config.middleware.append(AllowHeader())
    config.middleware.append(TrailingSlashInQuery())
    config.after_exception.append(count_unmatched)


def _configure_probes(config: AppConfig, settings: WebSettings, source: StatusSource) -> None:
    """``/healthz`` and ``/readyz`` under the prefix, and at the root when there is one."""
    for prefix, documented in _prefixes(settings):
        config.route_handlers.extend(
            probe_handlers(source, settings, prefix=prefix, documented=documented)
        )


def _configure_metrics(config: AppConfig, settings: WebSettings, source: StatusSource) -> None:
    """``/metrics`` when ``CondaStoreServer.enable_metrics`` (requests are counted anyway: a
    later scrape, or another process's, still sees them)."""
    if not settings.enable_metrics:
        return
    for prefix, documented in _prefixes(settings):
        config.route_handlers.extend(
            metrics_handlers(source, settings, prefix=prefix, documented=documented)
        )


def _configure_api(config: AppConfig, settings: WebSettings, api: ApiContext | None) -> None:
    """The REST API (``/api/v1``, ``/api/v2``) and the login routes (``/login/``,
    ``/oauth_callback/``, ``/logout/``) when ``CondaStoreServer.enable_api``."""
    if api is None or not settings.enable_api:
        return
    config.request_max_body_size = api.settings.max_body_bytes
    config.route_handlers.append(_under_prefix(settings, [*api_routers(api), *login_routers(api)]))


def _configure_registry(config: AppConfig, settings: WebSettings, api: ApiContext | None) -> None:
    """The OCI registry at ``/v2/`` (at the root whatever the url_prefix: clients require it
    there) when ``CondaStoreServer.enable_registry``. Its routes bring their own credentials
    and error format; the app's exception handlers answer in that format under ``/v2`` too,
    for requests no registry route matches (other names, pushes)."""
    if api is None or not settings.enable_registry:
        return
    config.route_handlers.append(registry_router(api))
    config.exception_handlers = for_registry_paths(config.exception_handlers)


def _configure_ui(config: AppConfig, settings: WebSettings, api: ApiContext | None) -> None:
    """The web UI (``/ui/``, and a redirect to it from the url prefix itself) when
    ``CondaStoreServer.enable_ui`` (appliance.ui.pages). Its pages read the same use cases,
    with the same credentials, as the API."""
    if api is None or not settings.enable_ui:
        return
    config.route_handlers.append(
        _under_prefix(settings, ui_handlers(api, settings.under_prefix("")))
    )


def _configure_routes(
    config: AppConfig, settings: WebSettings, route_handlers: Sequence[ControllerRouterHandler]
) -> None:
    if route_handlers:
        config.route_handlers.append(_under_prefix(settings, route_handlers))


def _configure_openapi(config: AppConfig, settings: WebSettings) -> None:
    """The OpenAPI document at ``<prefix>/openapi.json`` and its HTML rendering at
    ``<prefix>/docs`` (every operation has an id)."""
    config.openapi_config = OpenAPIConfig(
        title="Kiln",
        version=__version__,
        description="A self-hosted conda environment store, compatible with conda-store's API.",
        path=settings.under_prefix("/docs"),
        render_plugins=[DocsPage(path="/"), JsonRenderPlugin(path="/openapi.json")],
        create_examples=False,
    )
    config.route_handlers.append(openapi_document(settings.under_prefix("/openapi.json")))


def _configure_shutdown(config: AppConfig, source: StatusSource, api: ApiContext | None) -> None:
    config.on_shutdown.append(source.close)
    if api is not None:
        config.on_shutdown.append(api.close)


def _prefixes(settings: WebSettings) -> list[tuple[str, bool]]:
    """(path prefix, in the OpenAPI schema) for the operational routes."""
    prefix = settings.under_prefix("")
    return [(prefix, True), ("", False)] if prefix else [("", True)]


def _under_prefix(settings: WebSettings, handlers: Sequence[ControllerRouterHandler]) -> Router:
    """A router serving ``handlers`` under the url_prefix."""
    return Router(path=settings.under_prefix("") or "/", route_handlers=list(handlers))

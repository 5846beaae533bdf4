"""The UI's reading pages: the environment list, an environment, a build, namespaces, tokens.

Paths (under ``<url prefix>/ui``):

``/``
    The environments the caller can see: ``search``, ``namespace``, ``status`` (of the current
    build), ``sort`` (``namespace`` or ``name``), ``order`` (``asc``/``desc``), ``page``; page
    links to every page (no hidden cap).
``/environment/{namespace}/{environment}/``
    Description, current build with its spec and artifacts, build history, and the forms of
    the actions the caller may take (edit, describe, switch, rebuild, delete, clone).
``/build/{id}/``
    Status, times, the step timeline (from the stored log), artifacts, the installed packages
    (``page``: their page), the log (followed live by ``static/log.js`` while the build runs;
    the script also refreshes the timeline meanwhile, and reloads the page when the log ends).

The actions of these pages live in :mod:`appliance.ui.environments` and
:mod:`appliance.ui.builds`; the pages show only those the caller's permissions allow.
``/namespaces/``
    The namespaces the caller can see.
``/tokens/``
    The caller's tokens (never the tokens themselves).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery
from litestar.types import ControllerRouterHandler

from appliance.api.dependencies import Context, Who
from appliance.api.pagination import page_request
from appliance.services import namespaces, overview, timeline, tokens
from appliance.services.environments import ENVIRONMENT_SORT_KEYS, EnvironmentFilters
from appliance.services.packages import BUILD_PACKAGE_SORT_KEYS
from appliance.ui.rendering import PAGE_SIZE, Pages, paging

#: Build statuses the list filters on (BuildStatus's values).
STATUSES = ("QUEUED", "BUILDING", "COMPLETED", "FAILED", "CANCELED")

#: Installed packages per page of a build page (at most ``max_page_size``).
PACKAGES_PAGE_SIZE = 100


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The reading pages' handlers (for the ``/ui`` router)."""

    @get("/", include_in_schema=False)
    async def environment_list(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        search: FromQuery[str | None] = None,
        namespace: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        page: FromQuery[int] = 1,
    ) -> Response[str]:
        """The environments the caller can see (anonymous callers see those
        ``anonymous`` roles grant), filtered and paginated like ``GET /api/v1/environment/``."""
        filters = EnvironmentFilters(
            search=search or None, namespace=namespace or None, status=status or None
        )
        request_page = page_request(
            page=page,
            size=PAGE_SIZE,
            sort_by=[sort] if sort else None,
            order=order or None,
            max_page_size=context.settings.max_page_size,
            sort_keys=ENVIRONMENT_SORT_KEYS,
        )
        listing = await context.db.read(overview.environment_rows, caller, filters, request_page)
        query = {
            key: value
            for key, value in (
                ("search", search), ("namespace", namespace), ("status", status),
                ("sort", sort), ("order", order),
            )
            if value
        }  # fmt: skip
        return pages.render(
            "environments.html", caller, request, **paging(listing, query),
            statuses=STATUSES, sort_keys=ENVIRONMENT_SORT_KEYS,
            search=search or "", namespace=namespace or "", status=status or "",
            sort=sort or "", order=order or "",
        )  # fmt: skip

    @get("/environment/{namespace:str}/{environment:str}/", include_in_schema=False)
    async def environment_detail(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[str]:
        """The environment and the forms of the actions the caller's permissions allow."""
        found = await context.db.read(overview.environment_page, caller, namespace, environment)
        return pages.render("environment.html", caller, request, page=found)

    @get("/build/{build_id:int}/", include_in_schema=False)
    async def build_detail(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        build_id: FromPath[int],
        page: FromQuery[int] = 1,
    ) -> Response[str]:
        """The build, its step timeline and ``page`` of its installed packages."""
        packages_page = page_request(
            page=page, size=PACKAGES_PAGE_SIZE, sort_by=["name"], order=None,
            max_page_size=context.settings.max_page_size, sort_keys=BUILD_PACKAGE_SORT_KEYS,
        )  # fmt: skip
        found = await context.db.read(overview.build_page, caller, build_id, packages_page)
        running = found.build.status in ("QUEUED", "BUILDING")
        steps = await asyncio.to_thread(
            timeline.read_timeline, context.storage, found.log_key, running=running
        )
        assert found.packages is not None
        return pages.render(
            "build.html", caller, request, page=found, running=running, timeline=steps,
            **paging(found.packages),
        )  # fmt: skip

    @get("/namespaces/", include_in_schema=False)
    async def namespace_list(
        request: Request[Any, Any, Any], context: Context, caller: Who, page: FromQuery[int] = 1
    ) -> Response[str]:
        request_page = page_request(
            page=page, size=PAGE_SIZE, sort_by=None, order=None,
            max_page_size=context.settings.max_page_size, sort_keys=("name",),
        )  # fmt: skip
        listing = await context.db.read(namespaces.list_namespaces, caller, request_page)
        return pages.render("namespaces.html", caller, request, **paging(listing))

    @get("/tokens/", include_in_schema=False)
    async def token_list(
        request: Request[Any, Any, Any], context: Context, caller: Who, page: FromQuery[int] = 1
    ) -> Response[str]:
        """The caller's tokens, newest first (logging in is needed: 401 -> the login page)."""
        request_page = page_request(
            page=page, size=PAGE_SIZE, sort_by=None, order=None,
            max_page_size=context.settings.max_page_size, sort_keys=tokens.TOKEN_SORT_KEYS,
        )  # fmt: skip
        listing = await context.db.read(tokens.list_tokens, caller, request_page)
        return pages.render("tokens.html", caller, request, **paging(listing))

    return [environment_list, environment_detail, build_detail, namespace_list, token_list]

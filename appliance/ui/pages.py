"""The UI's pages: each handler reads one use case (appliance.services.overview, the API's own
listings) as the request's caller and renders a Jinja2 template.

Paths (under the url prefix):

``/``
    A redirect to ``/ui/``.
``/ui/``
    The environments the caller can see: ``search``, ``namespace``, ``status`` (of the current
    build), ``sort`` (``namespace`` or ``name``), ``order`` (``asc``/``desc``), ``page``; page
    links to every page (no hidden cap).
``/ui/environment/{namespace}/{environment}/``
    Description, current build with its spec and artifacts, build history.
``/ui/build/{id}/``
    Status, times, artifacts, the log (followed live by ``static/log.js`` while the build runs).
``/ui/namespaces/``
    The namespaces the caller can see.
``/ui/tokens/``
    The caller's tokens (never the tokens themselves).
``/ui/static/...``
    The UI's own CSS and JavaScript.

Credentials are the API's (the session cookie of ``/login/``, read by
:func:`appliance.api.security.identify`). Errors are pages: 401 sends the browser to the login
page with ``next=`` this page; 403 says which permission is missing; 404 says what was not
found; anything else says what went wrong, never a stack trace.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response, Router, get
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who, dependencies
from appliance.api.pagination import page_request
from appliance.api.security import identify
from appliance.common.errors import KilnError
from appliance.services import namespaces, overview, tokens
from appliance.services.access import Caller
from appliance.services.environments import ENVIRONMENT_SORT_KEYS, EnvironmentFilters

_log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"

#: Environments per page of the list.
PAGE_SIZE = 25

#: Build statuses the list filters on (BuildStatus's values).
STATUSES = ("QUEUED", "BUILDING", "COMPLETED", "FAILED", "CANCELED")

#: What a person can do about an error page, by status code.
_ADVICE = {
    400: "Check the address or the values you entered, then try again.",
    403: "Ask an administrator of the namespace for a role that grants it.",
    404: "Check the address, or find it in the list of environments.",
    409: "Reload the page to see the current state, then try again.",
}
_TITLES = {
    400: "That request was not understood",
    401: "Please log in",
    403: "You do not have permission",
    404: "Not found",
    409: "That conflicts with the current state",
}


def human_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None or 0 -> ``"—"``."""
    if not size:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was, roughly (``"3 min ago"``)."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return f"{seconds} s ago"


def duration(start: datetime | None, end: datetime | None) -> str:
    """``end - start`` as ``"1 min 5 s"``; ``"—"`` unless both are known."""
    if start is None or end is None:
        return "—"
    seconds = max(0, int((end - start).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _templates() -> Environment:
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.filters.update(
        human_size=human_size,
        age=age,
        quote=lambda text: quote(str(text), safe=""),
        yaml=lambda value: yaml.safe_dump(value, sort_keys=False, default_flow_style=False),
    )
    templates.globals.update(duration=duration)
    return templates


class Pages:
    """Renders templates with what every page needs: the url prefix, the caller, and the host
    image references name (``registry_external_url``, else the host the request was sent to)."""

    def __init__(self, prefix: str, registry_external_url: str = "") -> None:
        self.prefix = prefix
        self.registry_external_url = registry_external_url
        self.templates = _templates()

    def render(
        self, name: str, caller: Caller | None, request: Request[Any, Any, Any],
        status_code: int = 200, **values: Any,
    ) -> Response[str]:  # fmt: skip
        user = caller.claims.subject if caller is not None and caller.claims else None
        page = self.templates.get_template(name).render(
            prefix=self.prefix,
            ui=f"{self.prefix}/ui",
            user=user,
            here=_here(request),
            registry=self.registry_external_url or request.url.netloc,
            **values,
        )
        return Response(page, status_code=status_code, media_type=MediaType.HTML)

    def login_url(self, request: Request[Any, Any, Any]) -> str:
        return f"{self.prefix}/login/?{urlencode({'next': _here(request)})}"


def _here(request: Request[Any, Any, Any]) -> str:
    """The request's path and query (the ``next`` of a login link)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.url.query
    return path + (f"?{query}" if query else "")


def _status_of(error: KilnError) -> int:
    """The HTTP status of a domain error (as appliance.web.errors maps them for the API)."""
    if error.code.endswith("not_found"):
        return 404
    if error.code in ("unauthenticated", "invalid_token"):
        return 401
    return {"forbidden": 403, "conflict": 409, "busy": 503}.get(error.code, 400)


def _error_handlers(pages: Pages, context: ApiContext) -> dict[Any, Any]:
    def page_for(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
        if status == 401:
            return Redirect(pages.login_url(request))
        try:  # the navigation still shows who is logged in (credentials are verified again)
            caller: Caller | None = identify(request, context)
        except HTTPException:
            caller = None
        title = _TITLES.get(status, "Something went wrong")
        advice = _ADVICE.get(status, "Try again in a moment; if it keeps happening, tell an "
                                     "administrator what you were doing.")  # fmt: skip
        return pages.render(
            "error.html", caller, request, status_code=status, title=title, message=message,
            advice=advice, code=status,
        )  # fmt: skip

    def kiln_error(request: Request[Any, Any, Any], error: KilnError) -> Response[Any]:
        return page_for(request, _status_of(error), error.message)

    def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
        return page_for(request, error.status_code, error.detail)

    def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        _log.exception("UI page %s failed", request.url.path, exc_info=error)
        return page_for(
            request, HTTP_500_INTERNAL_SERVER_ERROR, "The server could not show this page."
        )

    return {KilnError: kiln_error, HTTPException: http_error, Exception: internal_error}


def _page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link (None: a gap), always the first, last and those near ``page``."""
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    links: list[int | None] = []
    for number in shown:
        if links and links[-1] is not None and number - links[-1] > 1:
            links.append(None)
        links.append(number)
    return links


def ui_handlers(context: ApiContext, prefix: str) -> list[ControllerRouterHandler]:
    """The UI's routes, for a router at the url prefix (``prefix``: ``""`` or ``"/path"``)."""
    pages = Pages(prefix, context.settings.registry_external_url)

    @get("/", include_in_schema=False)
    async def home() -> Redirect:
        return Redirect(f"{prefix}/ui/")

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
        last = max(1, math.ceil(listing.count / listing.size))
        query = {
            key: value
            for key, value in (
                ("search", search), ("namespace", namespace), ("status", status),
                ("sort", sort), ("order", order),
            )
            if value
        }  # fmt: skip
        return pages.render(
            "environments.html", caller, request,
            listing=listing, last=last, links=_page_links(listing.page, last),
            query=query, statuses=STATUSES, sort_keys=ENVIRONMENT_SORT_KEYS,
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
        found = await context.db.read(overview.environment_page, caller, namespace, environment)
        return pages.render("environment.html", caller, request, page=found)

    @get("/build/{build_id:int}/", include_in_schema=False)
    async def build_detail(
        request: Request[Any, Any, Any], context: Context, caller: Who, build_id: FromPath[int]
    ) -> Response[str]:
        found = await context.db.read(overview.build_page, caller, build_id)
        running = found.build.status in ("QUEUED", "BUILDING")
        return pages.render("build.html", caller, request, page=found, running=running)

    @get("/namespaces/", include_in_schema=False)
    async def namespace_list(
        request: Request[Any, Any, Any], context: Context, caller: Who, page: FromQuery[int] = 1
    ) -> Response[str]:
        request_page = page_request(
            page=page, size=PAGE_SIZE, sort_by=None, order=None,
            max_page_size=context.settings.max_page_size, sort_keys=("name",),
        )  # fmt: skip
        listing = await context.db.read(namespaces.list_namespaces, caller, request_page)
        last = max(1, math.ceil(listing.count / listing.size))
        return pages.render(
            "namespaces.html", caller, request,
            listing=listing, last=last, links=_page_links(listing.page, last), query={},
        )  # fmt: skip

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
        last = max(1, math.ceil(listing.count / listing.size))
        return pages.render(
            "tokens.html", caller, request,
            listing=listing, last=last, links=_page_links(listing.page, last), query={},
        )  # fmt: skip

    @get("/{rest:path}", include_in_schema=False)
    async def unknown_page(rest: FromPath[str]) -> Response[str]:
        """Any other address under ``/ui/``: the 404 page (not the API's JSON error)."""
        raise NotFoundException(f"there is no page at /ui{rest}")

    handlers = _error_handlers(pages, context)
    ui = Router(
        path="/ui",
        route_handlers=[
            environment_list,
            environment_detail,
            build_detail,
            namespace_list,
            token_list,
            unknown_page,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False, name="ui-static"
            ),
        ],
        dependencies=dependencies(context),
        exception_handlers=handlers,
    )
    return [home, ui]

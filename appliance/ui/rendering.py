"""Rendering the UI's pages: the Jinja2 environment, its filters, and :class:`Pages`, which
renders a template with what every page needs (url prefix, caller, form token, notice)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import MediaType, Request, Response

from appliance.services.access import Caller
from appliance.services.listing import Listing
from appliance.ui.forms import NOTICES, form_token

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"

#: Rows per page of the UI's lists.
PAGE_SIZE = 25


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
    return seconds_text((end - start).total_seconds())


def seconds_text(seconds: float) -> str:
    """``65.2`` -> ``"1 min 5 s"``; under ten seconds with one decimal (``"2.4 s"``)."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


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
    templates.globals.update(duration=duration, seconds=seconds_text)
    return templates


def page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link (None: a gap), always the first, last and those near ``page``."""
    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    links: list[int | None] = []
    for number in shown:
        if links and links[-1] is not None and number - links[-1] > 1:
            links.append(None)
        links.append(number)
    return links


def paging(listing: Listing[Any], query: dict[str, str] | None = None) -> dict[str, Any]:
    """What ``_pages.html``'s ``page_links`` macro needs for ``listing``: ``listing``, ``last``,
    ``links`` and the ``query`` the links keep."""
    last = max(1, math.ceil(listing.count / listing.size))
    return {
        "listing": listing,
        "last": last,
        "links": page_links(listing.page, last),
        "query": query or {},
    }


def here(request: Request[Any, Any, Any]) -> str:
    """The request's path and query (the ``next`` of a login link)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    query = request.url.query
    return path + (f"?{query}" if query else "")


class Pages:
    """Renders templates with what every page needs: the url prefix (``prefix``, ``ui``), the
    caller's user name (``user``), the caller's form token (``csrf``, for every form that
    changes something), the notice a redirect asked for (``?done=<key>`` of
    :data:`~appliance.ui.forms.NOTICES`), and the host image references name
    (``registry_external_url``, else the host the request was sent to)."""

    def __init__(self, prefix: str, secret: str, registry_external_url: str = "") -> None:
        self.prefix = prefix
        self.ui = f"{prefix}/ui"
        self.secret = secret
        self.registry_external_url = registry_external_url
        self.templates = _templates()

    def render(
        self, name: str, caller: Caller | None, request: Request[Any, Any, Any],
        status_code: int = 200, **values: Any,
    ) -> Response[str]:  # fmt: skip
        user = caller.claims.subject if caller is not None and caller.claims else None
        done = request.query_params.get("done")
        page = self.templates.get_template(name).render(
            prefix=self.prefix,
            ui=self.ui,
            user=user,
            here=here(request),
            csrf=form_token(self.secret, caller),
            notice=NOTICES.get(done) if done else None,
            registry=self.registry_external_url or request.url.netloc,
            **values,
        )
        return Response(
            page,
            status_code=status_code,
            media_type=MediaType.HTML,
            headers={"Cache-Control": "no-store"} if caller and caller.claims else None,
        )

    def login_url(self, request: Request[Any, Any, Any]) -> str:
        """The login page, coming back to ``request``'s page."""
        return self.login_url_for(here(request))

    def login_url_for(self, target: str) -> str:
        """The login page, coming back to ``target`` (a path on this server)."""
        return f"{self.prefix}/login/?{urlencode({'next': target})}"

"""Errors as pages a person understands: what happened and what to do, never a stack trace.

401 sends the browser to the login page with ``next=`` the page it asked for; 403 says which
permission is missing; 404 what was not found; anything unexpected is logged with its traceback
and shown as a page saying the server could not show it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from appliance.api.context import ApiContext
from appliance.api.security import identify
from appliance.api.statuses import status_of
from appliance.common.errors import KilnError
from appliance.services.access import Caller
from appliance.ui.rendering import Pages

_log = logging.getLogger(__name__)

#: What a person can do about an error page, by status code.
ADVICE = {
    400: "Check the address or the values you entered, then try again.",
    403: "Ask an administrator of the namespace for a role that grants it.",
    404: "Check the address, or find it in the list of environments.",
    409: "Reload the page to see the current state, then try again.",
    503: "The server is busy; try again in a moment.",
}
TITLES = {
    400: "That request was not understood",
    401: "Please log in",
    403: "You do not have permission",
    404: "Not found",
    409: "That conflicts with the current state",
    503: "The server is busy",
}


def _form_page(request: Request[Any, Any, Any], pages: Pages) -> str:
    """The page a form was submitted from (its same-site ``Referer``), else the UI's home."""
    source = urlsplit(request.headers.get("referer", ""))
    if source.netloc and source.netloc.lower() == request.headers.get("host", "").lower():
        return source.path + (f"?{source.query}" if source.query else "")
    return f"{pages.ui}/"


def error_handlers(pages: Pages, context: ApiContext) -> dict[Any, Any]:
    """Litestar exception handlers rendering ``error.html`` (or redirecting to log in)."""

    def page_for(request: Request[Any, Any, Any], status: int, message: str) -> Response[Any]:
        if status == 401:
            if request.method == "GET":
                return Redirect(pages.login_url(request))
            # after logging in, back to the page the form was on (never to the POST itself)
            return Redirect(pages.login_url_for(_form_page(request, pages)), status_code=303)
        try:  # the navigation still shows who is logged in (credentials are verified again)
            caller: Caller | None = identify(request, context)
        except HTTPException:
            caller = None
        title = TITLES.get(status, "Something went wrong")
        advice = ADVICE.get(status, "Try again in a moment; if it keeps happening, tell an "
                                    "administrator what you were doing.")  # fmt: skip
        return pages.render(
            "error.html", caller, request, status_code=status, title=title, message=message,
            advice=advice, code=status,
        )  # fmt: skip

    def kiln_error(request: Request[Any, Any, Any], error: KilnError) -> Response[Any]:
        return page_for(request, status_of(error), error.message)

    def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
        return page_for(request, error.status_code, error.detail)

    def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        _log.exception("UI page %s failed", request.url.path, exc_info=error)
        return page_for(
            request, HTTP_500_INTERNAL_SERVER_ERROR, "The server could not show this page."
        )

    return {KilnError: kiln_error, HTTPException: http_error, Exception: internal_error}

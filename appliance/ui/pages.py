"""The UI's router: every page module's handlers under ``/ui``, its static files, its error
pages, and a redirect from the url prefix itself.

Page modules (each ``routes(pages) -> handlers``):

- :mod:`appliance.ui.browse`: the reading pages (lists, an environment, a build).
- :mod:`appliance.ui.environments`, :mod:`appliance.ui.builds`: their actions (description,
  make current, rebuild, delete, clone; cancel).
- :mod:`appliance.ui.editor`: create and edit a specification (server-side check, package
  search, solve preview and what would change).
- :mod:`appliance.ui.namespaces`, :mod:`appliance.ui.tokens`, :mod:`appliance.ui.settings`:
  namespaces (create, role mappings, delete), the caller's tokens (create once-shown, revoke),
  settings at the global, namespace and environment levels.

Credentials are the API's (the session cookie of ``/login/``, read by
:func:`appliance.api.security.identify`); forms that change something carry the caller's form
token (:mod:`appliance.ui.forms`). Errors are pages (:mod:`appliance.ui.errors`).
"""

from __future__ import annotations

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import dependencies
from appliance.ui import browse, builds, editor, environments, namespaces, settings, tokens
from appliance.ui.errors import error_handlers
from appliance.ui.rendering import STATIC, Pages


def ui_handlers(context: ApiContext, prefix: str) -> list[ControllerRouterHandler]:
    """The UI's routes, for a router at the url prefix (``prefix``: ``""`` or ``"/path"``)."""
    pages = Pages(prefix, context.session_secret, context.settings.registry_external_url)

    @get("/", include_in_schema=False)
    async def home() -> Redirect:
        return Redirect(f"{prefix}/ui/")

    @get("/{rest:path}", include_in_schema=False)
    async def unknown_page(rest: FromPath[str]) -> Response[str]:
        """Any other address under ``/ui/``: the 404 page (not the API's JSON error)."""
        raise NotFoundException(f"there is no page at /ui{rest}")

    ui = Router(
        path="/ui",
        route_handlers=[
            *browse.routes(pages),
            *namespaces.routes(pages),
            *tokens.routes(pages),
            *settings.routes(pages),
            *environments.routes(pages),
            *builds.routes(pages),
            *editor.routes(pages),
            unknown_page,
            create_static_files_router(
                path="/static", directories=[STATIC], include_in_schema=False, name="ui-static"
            ),
        ],
        dependencies=dependencies(context),
        exception_handlers=error_handlers(pages, context),
    )
    return [home, ui]

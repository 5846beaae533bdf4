"""A build's actions: rebuild, cancel, delete (after a confirmation page).

Paths (under ``<url prefix>/ui/build/{id}``), forms of the build and environment pages posting
the caller's form token:

``POST rebuild/``
    A new build of the same specification (``PUT /api/v1/build/{id}/``); then its page.
``POST cancel/``
    Cancel a QUEUED or BUILDING build (``PUT /api/v1/build/{id}/cancel/``); then its page.
``GET delete/``
    What deleting the build removes, and a button to confirm (only for callers who may).
``POST delete/``
    ``DELETE /api/v1/build/{id}/``; then its environment's page.

The use cases check the caller's permissions and the build's state (a running build is
canceled before it is deleted, the current build is never deleted): refusals are error pages
saying so, and nothing changes.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from appliance.api.dependencies import Context, Who
from appliance.services import build_queries, overview
from appliance.ui.environments import environment_url
from appliance.ui.forms import read_form, see_other
from appliance.ui.rendering import Pages


def build_url(pages: Pages, build_id: int) -> str:
    """The page of the build ``build_id``."""
    return f"{pages.ui}/build/{build_id}/"


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The build actions' handlers (for the ``/ui`` router)."""

    @post("/build/{build_id:int}/rebuild/", include_in_schema=False)
    async def rebuild(
        request: Request[Any, Any, Any], context: Context, caller: Who, build_id: FromPath[int]
    ) -> Redirect:
        """Queue a new build of the build's specification (``environment::update``)."""
        await read_form(request, caller, pages.secret)
        new_id = await context.db.run(
            build_queries.rebuild, caller, build_id, context.build_settings
        )
        return see_other(build_url(pages, new_id), "rebuilt")

    @post("/build/{build_id:int}/cancel/", include_in_schema=False)
    async def cancel(
        request: Request[Any, Any, Any], context: Context, caller: Who, build_id: FromPath[int]
    ) -> Redirect:
        """Cancel a QUEUED or BUILDING build (``build::cancel``)."""
        await read_form(request, caller, pages.secret)
        await context.db.run(build_queries.cancel_build, caller, build_id)
        return see_other(build_url(pages, build_id), "canceled")

    @get("/build/{build_id:int}/delete/", include_in_schema=False)
    async def confirm_delete(
        request: Request[Any, Any, Any], context: Context, caller: Who, build_id: FromPath[int]
    ) -> Response[str]:
        """What deleting the build removes, and the button that does it."""
        found = await context.db.read(overview.build_deletion, caller, build_id)
        where = f"{found.namespace}/{found.environment}"
        return pages.render(
            "confirm.html",
            caller,
            request,
            title=f"Delete build #{build_id}?",
            question=f"Delete build #{build_id} ({found.build.status}) of {where}? This removes:",
            consequences=[
                f"build #{build_id}: its installed environment on the server",
                "its artifacts: log, lockfile, YAML file, conda-pack archive and image (those "
                "the server keeps on deletion stay, CondaStore.build_artifacts_kept_on_deletion)",
            ],
            warning=f"The environment {where} and its other builds stay. This cannot be undone.",
            action=f"{build_url(pages, build_id)}delete/",
            button="Delete the build",
            back=build_url(pages, build_id),
        )

    @post("/build/{build_id:int}/delete/", include_in_schema=False)
    async def delete(
        request: Request[Any, Any, Any], context: Context, caller: Who, build_id: FromPath[int]
    ) -> Redirect:
        """Delete a finished build that is not current (``build::delete``)."""
        await read_form(request, caller, pages.secret)
        found = await context.db.read(overview.build_deletion, caller, build_id)
        await context.db.run(build_queries.delete_build_as, caller, build_id)
        return see_other(environment_url(pages, found.namespace, found.environment), "deleted")

    return [rebuild, cancel, confirm_delete, delete]

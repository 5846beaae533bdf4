"""The environment page's actions: change the description, switch the current build, clone,
delete (after a confirmation page).

Paths (under ``<url prefix>/ui/environment/{namespace}/{environment}``), each a form of the
environment page (``browse.py``) posting the caller's form token:

``POST description/``
    ``description``: the new description (empty clears it); ``PUT /api/v1/environment/...``.
``POST switch/``
    ``build_id``: the COMPLETED build of this environment to make current; the same ``PUT``.
``POST clone/``
    ``namespace`` and ``name`` of the new environment: the current build's specification
    submitted there (:func:`appliance.services.clones.clone_environment`, the use case of
    ``POST /api/v1/specification/``); then the new environment's page.
``GET delete/``
    What deleting would remove, and a button to confirm (only for callers who may delete).
``POST delete/``
    ``DELETE /api/v1/environment/...``; then the environment list of its namespace.

Rebuilding is a build's action (:mod:`appliance.ui.builds`). The use cases check the caller's
permissions; bad values are error pages naming the problem, and nothing changes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from appliance.api.dependencies import Context, Who
from appliance.services import clones, environments, overview
from appliance.ui.forms import read_form, see_other
from appliance.ui.rendering import Pages

_PATH = "/environment/{namespace:str}/{environment:str}"


def environment_url(pages: Pages, namespace: str, environment: str) -> str:
    """The page of ``namespace/environment``."""
    return f"{pages.ui}/environment/{quote(namespace, safe='')}/{quote(environment, safe='')}/"


def build_number(text: str, field: str = "build_id") -> int:
    """``text`` as a build id; a 400 naming ``field`` otherwise."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        shown = repr(text) if text else "nothing"
        raise ValidationException(f"{field} must be a build number (1, 2, ...), not {shown}")
    return number


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The environment actions' handlers (for the ``/ui`` router)."""

    @post(f"{_PATH}/description/", include_in_schema=False)
    async def describe(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Redirect:
        """Replace the description (``environment::update``)."""
        form = await read_form(request, caller, pages.secret)
        await context.db.run(
            environments.update_environment,
            caller,
            namespace,
            environment,
            description=form.text("description"),
        )
        return see_other(environment_url(pages, namespace, environment), "described")

    @post(f"{_PATH}/switch/", include_in_schema=False)
    async def switch(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Redirect:
        """Make ``build_id`` the current build (``environment::update``)."""
        form = await read_form(request, caller, pages.secret)
        build_id = build_number(form.text("build_id"))
        await context.db.run(
            environments.update_environment, caller, namespace, environment, build_id=build_id
        )
        return see_other(environment_url(pages, namespace, environment), "switched")

    @post(f"{_PATH}/clone/", include_in_schema=False)
    async def clone(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Redirect:
        """Submit the current build's specification as ``namespace/name`` of the form
        (``environment::create`` there)."""
        form = await read_form(request, caller, pages.secret)
        target_namespace, target_name = form.text("namespace"), form.text("name")
        await context.db.run(
            clones.clone_environment,
            caller,
            context.build_settings,
            namespace,
            environment,
            target_namespace=target_namespace,
            target_name=target_name,
        )
        return see_other(environment_url(pages, target_namespace, target_name), "cloned")

    @get(f"{_PATH}/delete/", include_in_schema=False)
    async def confirm_delete(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[str]:
        """What deleting the environment removes, and the button that does it."""
        found = await context.db.read(overview.environment_deletion, caller, namespace, environment)
        builds = f"{found.builds} build{'' if found.builds == 1 else 's'}"
        consequences = [
            f"the environment {namespace}/{environment} and its settings",
            f"its {builds} and their artifacts: logs, lockfiles, YAML files, conda-pack "
            "archives and images",
        ]
        if found.running:
            consequences.append(
                f"{found.running} of them {'is' if found.running == 1 else 'are'} still queued "
                "or building and will be canceled"
            )
        return pages.render(
            "confirm.html",
            caller,
            request,
            title=f"Delete {namespace}/{environment}?",
            question=f"Delete the environment {namespace}/{environment}? This removes:",
            consequences=consequences,
            warning="This cannot be undone.",
            action=f"{environment_url(pages, namespace, environment)}delete/",
            button="Delete the environment",
            back=environment_url(pages, namespace, environment),
        )

    @post(f"{_PATH}/delete/", include_in_schema=False)
    async def delete(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Redirect:
        """Delete the environment (``environment::delete``)."""
        await read_form(request, caller, pages.secret)
        await context.db.run(environments.delete_environment_as, caller, namespace, environment)
        return see_other(f"{pages.ui}/", "deleted", namespace=namespace)

    return [describe, switch, clone, confirm_delete, delete]

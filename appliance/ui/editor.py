"""The UI's environment editor: create an environment from a specification, or edit one (a new
build of it), with the server's check, a package search and a preview of the solve.

Paths (under ``<url prefix>/ui``):

``/create/`` (GET, POST)
    A new environment in a namespace where the caller has ``environment::create`` (``GET``
    ``?namespace=`` preselects one); its name is the specification's ``name:``.
``/environment/{namespace}/{environment}/edit/`` (GET, POST)
    The environment's specification (of its current build, else of its newest), to submit as a
    new build; needs ``environment::update`` and ``environment::create`` (what the API's submit
    needs) on it.
``/check/`` (POST)
    The problems of a specification as JSON, ``{"problems": [{"message", "field", "line"}]}``:
    the live check of ``static/editor.js`` (fields ``specification``, ``namespace`` and, when
    editing, ``environment``).

The editor's form posts ``action``: ``check``, ``preview`` (what the solve would install and,
when editing, change), ``search`` (the package index, field ``search``), ``add:<package>``
(insert a dependency) and ``submit``; only ``submit`` changes anything, through the API's use
case, and answers with a redirect to the new build's page. Every other action answers with the
editor again, the text kept, the problems shown at their lines. The rules are in
:mod:`appliance.services.drafts`; without the permission the use case refuses (403), and the
``GET`` pages explain what is missing instead of showing an editor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.params import FromPath, FromQuery
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.schemas.spec_text import Insertion, add_dependency
from appliance.services import drafts
from appliance.services.access import Caller
from appliance.services.drafts import Draft, EditTarget, PackageSearch, Preview, Problem
from appliance.ui.forms import Form, read_form, see_other
from appliance.ui.rendering import Pages

#: The editor's actions that only read (``add:<package>`` aside).
READING_ACTIONS = ("check", "search", "preview")
#: Lines shown around a problem's line.
EXCERPT_LINES = 1


@dataclass(frozen=True)
class Editor:
    """What ``editor.html`` shows."""

    #: Where the form posts.
    action: str
    text: str
    namespace: str
    #: The environment edited (None: creating one).
    environment: str | None = None
    #: Creating: the namespaces to choose from.
    namespaces: tuple[str, ...] = ()
    #: Editing: the environment, and the build the text came from.
    target: EditTarget | None = None
    problems: tuple[Problem, ...] = ()
    #: Whether the problems are the outcome of a check (none: the server accepts the text).
    checked: bool = False
    search: str = ""
    results: PackageSearch | None = None
    inserted: Insertion | None = None
    preview: Preview | None = None
    force: bool = False
    #: Why the caller gets no editor (None: they may submit).
    refusal: str | None = None

    @property
    def creating(self) -> bool:
        return self.environment is None

    def excerpt(self, line: int) -> list[tuple[int, str, bool]]:
        """The lines around ``line``: (number, text, whether it is ``line``)."""
        lines = self.text.split("\n")
        first = max(1, line - EXCERPT_LINES)
        last = min(len(lines), line + EXCERPT_LINES)
        return [(number, lines[number - 1], number == line) for number in range(first, last + 1)]


def editor_text(form: Form) -> str:
    """The submitted specification, with the browser's CRLF line ends made LF."""
    return form.raw("specification").replace("\r\n", "\n")


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The editor's handlers (for the ``/ui`` router)."""

    def render(
        request: Request[Any, Any, Any], caller: Caller, view: Editor, status_code: int = 200
    ) -> Response[str]:
        return pages.render("editor.html", caller, request, status_code=status_code, view=view)

    async def act(
        request: Request[Any, Any, Any],
        context: ApiContext,
        caller: Caller,
        form: Form,
        view: Editor,
    ) -> Response[Any]:
        """Do the form's ``action`` on the draft ``view`` describes (see the module docstring)."""
        action = form.text("action") or "check"
        text = editor_text(form)
        view = replace(view, text=text, search=form.text("search"), force=form.has("force"))
        draft = Draft(text, view.namespace, view.environment)
        settings = context.build_settings
        if action == "submit":
            submitted = await context.db.run(
                drafts.submit_draft, caller, settings, draft, force=view.force
            )
            if submitted.build_id is not None:
                notice = "submitted" if submitted.queued else "unchanged"
                return see_other(f"{pages.ui}/build/{submitted.build_id}/", notice)
            view = replace(view, problems=submitted.problems, checked=True)
            return render(request, caller, view, status_code=400)
        if action == "preview":
            preview = await drafts.preview_draft(context.db, caller, context.solver, draft)
            view = replace(view, preview=preview, problems=preview.problems, checked=True)
            return render(request, caller, view)
        if action.startswith("add:"):
            inserted = add_dependency(text, action.removeprefix("add:"))
            view = replace(view, text=inserted.text, inserted=inserted)
            draft = replace(draft, text=inserted.text)
        elif action not in READING_ACTIONS:
            raise ValidationException(
                f"unknown action {action[:40]!r}; the editor's buttons send check, preview, "
                "search, add:<package> or submit"
            )
        checked = await context.db.read(drafts.check_draft, caller, settings, draft)
        view = replace(view, problems=checked.problems, checked=True)
        if view.search and action != "check":
            results = await context.db.read(drafts.search_index, view.search)
            view = replace(view, results=results)
        return render(request, caller, view)

    @get("/create/", include_in_schema=False)
    async def create_page(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromQuery[str | None] = None,
    ) -> Response[str]:
        """The editor for a new environment (logging in is needed: 401 -> the login page)."""
        choices = await context.db.read(drafts.creatable_namespaces, caller)
        if not choices and caller.claims is None:
            raise NotAuthorizedException("log in to create an environment")
        view = Editor(
            action=f"{pages.ui}/create/",
            text=drafts.NEW_SPECIFICATION,
            namespace=_preselected(namespace, choices, caller),
            namespaces=tuple(choices),
        )
        if not choices:
            refusal = (
                "You cannot create environments: none of your roles grants environment::create "
                "in any namespace. Ask an administrator of a namespace for the editor role."
            )
            return render(request, caller, replace(view, refusal=refusal), status_code=403)
        return render(request, caller, view)

    @post("/create/", include_in_schema=False, status_code=200)
    async def create_post(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[Any]:
        form = await read_form(request, caller, pages.secret)
        choices = await context.db.read(drafts.creatable_namespaces, caller)
        view = Editor(
            action=f"{pages.ui}/create/",
            text="",
            namespace=form.text("namespace"),
            namespaces=tuple(choices),
        )
        return await act(request, context, caller, form, view)

    @get("/environment/{namespace:str}/{environment:str}/edit/", include_in_schema=False)
    async def edit_page(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[str]:
        """The editor for ``namespace/environment``, or why the caller cannot edit it."""
        target = await context.db.read(drafts.edit_target, caller, namespace, environment)
        view = _edit_view(pages, target, namespace, environment)
        if not target.can_edit:
            refusal = (
                f"You can read {namespace}/{environment} but not change it: your roles do not "
                f"grant {' and '.join(target.missing)} on it. Ask an administrator of the "
                f"namespace {namespace} for the editor role."
            )
            return render(request, caller, replace(view, refusal=refusal), status_code=403)
        return render(request, caller, view)

    @post(
        "/environment/{namespace:str}/{environment:str}/edit/",
        include_in_schema=False,
        status_code=200,
    )
    async def edit_post(
        request: Request[Any, Any, Any],
        context: Context,
        caller: Who,
        namespace: FromPath[str],
        environment: FromPath[str],
    ) -> Response[Any]:
        form = await read_form(request, caller, pages.secret)
        target = await context.db.read(drafts.edit_target, caller, namespace, environment)
        view = _edit_view(pages, target, namespace, environment)
        return await act(request, context, caller, form, view)

    @post("/check/", include_in_schema=False, status_code=200)
    async def check(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[dict[str, Any]]:
        """The problems of the posted draft, as JSON (for ``static/editor.js``)."""
        form = await read_form(request, caller, pages.secret)
        draft = Draft(editor_text(form), form.text("namespace"), form.text("environment") or None)
        checked = await context.db.read(drafts.check_draft, caller, context.build_settings, draft)
        return Response(
            {"problems": [asdict(problem) for problem in checked.problems]},
            media_type=MediaType.JSON,
            headers={"Cache-Control": "no-store"},
        )

    return [create_page, create_post, edit_page, edit_post, check]


def _preselected(asked: str | None, choices: list[str], caller: Caller) -> str:
    """The namespace the form starts with: the one asked for, else the caller's own, else the
    first they can create in."""
    if asked and asked in choices:
        return asked
    own = caller.claims.primary_namespace if caller.claims else None
    if own in choices:
        return str(own)
    return choices[0] if choices else ""


def _edit_view(pages: Pages, target: EditTarget, namespace: str, environment: str) -> Editor:
    return Editor(
        action=f"{pages.ui}/environment/{_quoted(namespace)}/{_quoted(environment)}/edit/",
        text=target.text,
        namespace=namespace,
        environment=environment,
        target=target,
    )


def _quoted(name: str) -> str:
    return quote(name, safe="")

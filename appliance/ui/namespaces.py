"""The UI's namespace pages: create a namespace, a namespace's page with its role mappings,
and deleting it.

Paths (under ``<url prefix>/ui``; the list ``/namespaces/`` is a reading page of
:mod:`appliance.ui.browse`):

``/namespaces/new/`` (GET), ``/namespaces/`` (POST ``name``)
    The form to create a namespace, and creating it (``create_namespace``, as ``POST
    /api/v1/namespace/{ns}/``); then the new namespace's page.
``/namespace/{ns}/``
    The namespace: its environments, settings, metadata, and both kinds of role mappings:
    the v2 grants (another namespace's users get a role on this one; ``set_role_grant`` /
    ``delete_role_grant``, as ``POST|PUT|DELETE /api/v1/namespace/{ns}/role``) and the v1
    mappings (this namespace's users get roles on what patterns match; ``update_namespace``,
    as ``PUT /api/v1/namespace/{ns}/``).
``/namespace/{ns}/roles/`` (POST ``other_namespace``, ``role``, ``change`` to change an
existing grant), ``/namespace/{ns}/roles/remove/`` (POST ``other_namespace``)
    Give, change or take away another namespace's role.
``/namespace/{ns}/mappings/`` (POST ``mappings``: ``pattern: role, role`` per line),
``/namespace/{ns}/metadata/`` (POST ``metadata``: a JSON object)
    Replace the v1 role mappings, or the metadata.
``/namespace/{ns}/delete/``
    GET: what deleting removes, and a button; POST: delete it (``delete_namespace_as``).

Every change calls the REST API's use case, so the permission checks are the API's; pages show
only the controls :class:`Rights` allows. A change to a namespace may change what callers hold
(role mappings), so resolved callers are forgotten afterwards, as the API does. Bad input shows
the page again with the use case's message next to the form, and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.api.statuses import status_of
from appliance.auth.rbac import Permission, arn_applies, arn_within
from appliance.common.errors import KilnError
from appliance.schemas import api as wire
from appliance.services import namespaces, usage
from appliance.services.access import Caller, describe_access
from appliance.ui.forms import read_form, see_other
from appliance.ui.rendering import Pages

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Error codes that are not a form's problem but a page of their own (log in, permission).
NOT_FORM_PROBLEMS = frozenset({"forbidden", "unauthenticated", "invalid_token"})


@dataclass(frozen=True)
class Rights:
    """What the caller's role bindings grant, as ``GET /api/v1/permission/`` tells it
    (:func:`~appliance.services.access.describe_access`): for showing only the controls a
    caller may use. The use cases check again; this never allows anything."""

    #: pattern -> the permissions its roles grant.
    permissions: Mapping[str, frozenset[str]]
    #: pattern -> role names.
    roles: Mapping[str, list[str]]
    authenticated: bool = False
    #: When the caller's own token expires (None: an anonymous caller).
    expiration: datetime | None = None
    primary_namespace: str = "default"

    @classmethod
    def of(cls, described: wire.Permissions) -> Rights:
        return cls(
            permissions={
                pattern: frozenset(held) for pattern, held in described.entity_permissions.items()
            },
            roles=dict(described.entity_roles),
            authenticated=described.authenticated,
            expiration=described.expiration,
            primary_namespace=described.primary_namespace,
        )

    def on(self, namespace: str, environment: str | None = None) -> frozenset[str]:
        """The permissions held on ``namespace`` (or ``namespace/environment``)."""
        held: set[str] = set()
        for pattern, granted in self.permissions.items():
            if arn_applies(pattern, namespace, environment):
                held |= granted
        return frozenset(held)

    def over(self, pattern: str) -> frozenset[str]:
        """The permissions held by bindings covering all of ``pattern`` (``*/*``: every
        namespace; ``team/*``: every environment of ``team``)."""
        held: set[str] = set()
        for binding, granted in self.permissions.items():
            if arn_within(pattern, binding):
                held |= granted
        return frozenset(held)

    def anywhere(self, permission: str) -> bool:
        """Whether some binding grants ``permission`` (on some namespace)."""
        return any(permission in granted for granted in self.permissions.values())


async def rights_of(context: ApiContext, caller: Caller) -> Rights:
    """:class:`Rights` of ``caller``."""
    return Rights.of(await context.db.read(describe_access, caller))


def is_form_problem(error: KilnError) -> bool:
    """Whether ``error`` is about what was entered (shown next to the form) rather than about
    who is asking (a login or permission page)."""
    return error.code not in NOT_FORM_PROBLEMS


def parse_mappings(text: str) -> dict[str, list[str]]:
    """``pattern: role, role`` per line (blank lines and ``#`` comments skipped) as
    ``{pattern: [roles]}``; a pattern on several lines gets all their roles. Raises
    :class:`KilnError` naming the line that does not read so."""
    mappings: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, colon, roles = line.rpartition(":")
        names = [role.strip() for role in roles.split(",") if role.strip()]
        if not colon or not pattern.strip() or not names:
            raise KilnError(
                f"line {number} ({line[:80]!r}): expected '<namespace>/<environment>: role', "
                "e.g. 'team/*: viewer'"
            )
        mappings.setdefault(pattern.strip(), []).extend(names)
    return mappings


def mappings_text(mappings: list[wire.RoleMapping]) -> str:
    """The v1 role mappings as the form shows them (``pattern: role`` per line)."""
    by_entity: dict[str, list[str]] = {}
    for mapping in mappings:
        by_entity.setdefault(mapping.entity, []).append(mapping.role)
    return "".join(f"{entity}: {', '.join(roles)}\n" for entity, roles in by_entity.items())


async def change(
    context: ApiContext,
    work: Callable[Concatenate[Any, _P], _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> _T:
    """Run a change to a namespace; callers resolved before it are resolved again (their role
    mappings may have changed), as the API's namespace routes do."""
    result = await context.db.run(work, *args, **kwargs)
    context.access_cache.clear()
    return result


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The namespace pages' handlers (for the ``/ui`` router)."""

    def namespace_url(name: str) -> str:
        return f"{pages.ui}/namespace/{name}/"

    async def show_namespace(
        request: Request[Any, Any, Any],
        context: ApiContext,
        caller: Caller,
        name: str,
        *,
        status_code: int = 200,
        **values: Any,
    ) -> Response[str]:
        """The namespace page (``values``: a form's ``problem`` and what was entered)."""
        rights = await rights_of(context, caller)
        detail = await context.db.read(namespaces.get_namespace, caller, name)
        allowed = rights.on(name)
        grants = None
        if Permission.ROLE_MAPPING_READ in allowed:
            grants = await context.db.read(namespaces.list_role_grants, caller, name)
        values.setdefault("mappings", mappings_text(detail.role_mappings))
        values.setdefault("metadata", json.dumps(detail.metadata_, indent=2, sort_keys=True))
        return pages.render(
            "namespace.html", caller, request, status_code=status_code,
            namespace=detail, grants=grants, allowed=allowed,
            settings_allowed=Permission.SETTING_READ in rights.over(f"{name}/*"),
            roles=sorted(context.policy.roles), **values,
        )  # fmt: skip

    @get("/namespaces/new/", include_in_schema=False)
    async def new_namespace(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[str]:
        """The form to create a namespace (only for callers some binding lets create one)."""
        rights = await rights_of(context, caller)
        return pages.render(
            "namespace_new.html", caller, request,
            may_create=rights.anywhere(Permission.NAMESPACE_CREATE), entered="",
        )  # fmt: skip

    @post("/namespaces/", include_in_schema=False)
    async def create_namespace(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[Any]:
        form = await read_form(request, caller, pages.secret)
        name = form.text("name")
        try:
            await change(context, namespaces.create_namespace, caller, name)
        except KilnError as error:
            if not is_form_problem(error):
                raise
            return pages.render(
                "namespace_new.html", caller, request, status_code=status_of(error),
                may_create=True, entered=name, problem=error.message,
            )  # fmt: skip
        return see_other(namespace_url(name), "created")

    @get("/namespace/{name:str}/", include_in_schema=False)
    async def namespace_page(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Response[str]:
        return await show_namespace(request, context, caller, name)

    @post("/namespace/{name:str}/roles/", include_in_schema=False)
    async def set_role(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Response[Any]:
        """Give another namespace's users a role here (or, with ``change``, change it)."""
        form = await read_form(request, caller, pages.secret)
        other, role = form.text("other_namespace"), form.text("role")
        create = not form.has("change")
        try:
            if not other:
                raise KilnError("name the other namespace whose users get the role")
            await change(
                context, namespaces.set_role_grant, caller, name, other, role, create=create
            )
        except KilnError as error:
            if not is_form_problem(error):
                raise
            return await show_namespace(
                request, context, caller, name, status_code=status_of(error),
                grant_problem=error.message, other_namespace=other, role=role,
            )  # fmt: skip
        return see_other(namespace_url(name), "granted")

    @post("/namespace/{name:str}/roles/remove/", include_in_schema=False)
    async def remove_role(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Redirect:
        form = await read_form(request, caller, pages.secret)
        other = form.text("other_namespace")
        await change(context, namespaces.delete_role_grant, caller, name, other)
        return see_other(namespace_url(name), "ungranted")

    @post("/namespace/{name:str}/mappings/", include_in_schema=False)
    async def set_mappings(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Response[Any]:
        """Replace every v1 role mapping of the namespace."""
        form = await read_form(request, caller, pages.secret)
        text = form.raw("mappings")
        try:
            mappings = parse_mappings(text)
            await change(context, namespaces.update_namespace, caller, name, role_mappings=mappings)
        except KilnError as error:
            if not is_form_problem(error):
                raise
            return await show_namespace(
                request, context, caller, name, status_code=status_of(error),
                mappings_problem=error.message, mappings=text,
            )  # fmt: skip
        return see_other(namespace_url(name), "saved")

    @post("/namespace/{name:str}/metadata/", include_in_schema=False)
    async def set_metadata(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Response[Any]:
        """Replace the namespace's metadata (a JSON object)."""
        form = await read_form(request, caller, pages.secret)
        text = form.raw("metadata")
        try:
            try:
                metadata = json.loads(text) if text.strip() else {}
            except ValueError as bad:
                raise KilnError(f"the metadata is not valid JSON: {bad}") from None
            await change(context, namespaces.update_namespace, caller, name, metadata=metadata)
        except KilnError as error:
            if not is_form_problem(error):
                raise
            return await show_namespace(
                request, context, caller, name, status_code=status_of(error),
                metadata_problem=error.message, metadata=text,
            )  # fmt: skip
        return see_other(namespace_url(name), "saved")

    @get("/namespace/{name:str}/delete/", include_in_schema=False)
    async def confirm_delete(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Response[str]:
        """What deleting the namespace removes, and the button that does it."""
        detail = await context.db.read(namespaces.get_namespace, caller, name)
        rights = await rights_of(context, caller)
        held = await context.db.read(usage.namespace_usage, caller)
        return pages.render(
            "namespace.html", caller, request, namespace=detail, confirming=True,
            allowed=rights.on(name), usage=held.get(name),
        )  # fmt: skip

    @post("/namespace/{name:str}/delete/", include_in_schema=False)
    async def delete_namespace(
        request: Request[Any, Any, Any], context: Context, caller: Who, name: FromPath[str]
    ) -> Redirect:
        await read_form(request, caller, pages.secret)
        await change(context, namespaces.delete_namespace_as, caller, name)
        return see_other(f"{pages.ui}/namespaces/", "deleted")

    return [
        new_namespace, create_namespace, namespace_page, set_role, remove_role, set_mappings,
        set_metadata, confirm_delete, delete_namespace,
    ]  # fmt: skip

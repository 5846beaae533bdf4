"""Every UI form, allowed and refused: a table says what each ``POST /ui/...`` needs, and the
tests walk the app's own route table, so a new form without a row here fails the suite.

The UI shows only the controls a caller's permissions allow, but the server must refuse a
direct POST anyway (with the caller's own valid form token, so that it is the permission that
refuses, not the token). For each form route the tests check that

- an anonymous caller is sent to log in (303 to ``/login/``) and nothing is done,
- a caller holding only the role just below (or the role elsewhere) gets the 403 page,
- a caller holding the role succeeds (303 to the next page).

All run against the API permission table's state (real builds in ``team``: one completed and
current, one failed, one queued), refusals first and changes last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.testing import TestClient

from appliance.api.context import ApiContext
from appliance.auth.tokens import verify
from appliance.services.access import Caller
from appliance.ui.forms import form_token
from tests.fixtures.api import Callers
from tests.integration import test_api_permissions
from tests.integration.test_api_permissions import LADDER, State

Client = TestClient[Litestar]

#: The API permission table's state (its fixture, reused).
state = test_api_permissions.state


@dataclass(frozen=True)
class Form:
    """What a form route needs: ``role`` on ``scope`` (``"authenticated"``: any logged-in
    caller; ``"own-token"``: the token's own holder), the path and the fields posted."""

    role: str
    path: str
    scope: str = "team/*"
    fields: dict[str, str] = field(default_factory=dict)
    #: Changes state: checked after every other route.
    changes: bool = True
    #: What a refused caller gets (404 where a 403 would reveal that the object exists).
    refused_status: int = 403
    #: What a caller with the role gets: a redirect to the next page, or a page (200).
    succeeds: int = 303


SPEC = "name: tool-too\ndependencies:\n  - kiln-demo-tool\n"

#: route path -> form, with the path filled for the state (every route here is a POST).
TABLE: dict[str, Callable[[State], Form]] = {
    # environments and builds
    "/ui/create": lambda s: Form(
        "editor",
        "/ui/create/",
        fields={"namespace": "team", "specification": SPEC, "action": "submit"},
    ),
    "/ui/check": lambda s: Form(
        "editor",
        "/ui/check/",
        fields={"namespace": "team", "specification": SPEC},
        changes=False,
        succeeds=200,
    ),
    "/ui/environment/{namespace}/{environment}/edit": lambda s: Form(
        "editor",
        "/ui/environment/team/tool/edit/",
        fields={
            "specification": SPEC.replace("tool-too", "tool") + "  - kiln-demo-data\n",
            "action": "submit",
        },
    ),
    "/ui/environment/{namespace}/{environment}/description": lambda s: Form(
        "editor", "/ui/environment/team/tool/description/", fields={"description": "Tools"}
    ),
    "/ui/environment/{namespace}/{environment}/switch": lambda s: Form(
        "editor", "/ui/environment/team/tool/switch/", fields={"build_id": str(s.completed)}
    ),
    "/ui/environment/{namespace}/{environment}/clone": lambda s: Form(
        "editor",
        "/ui/environment/team/tool/clone/",
        fields={"namespace": "team", "name": "tool-copy"},
    ),
    "/ui/environment/{namespace}/{environment}/delete": lambda s: Form(
        "admin", "/ui/environment/team/broken/delete/"
    ),
    "/ui/build/{build_id}/rebuild": lambda s: Form("editor", f"/ui/build/{s.completed}/rebuild/"),
    "/ui/build/{build_id}/cancel": lambda s: Form("editor", f"/ui/build/{s.queued}/cancel/"),
    "/ui/build/{build_id}/delete": lambda s: Form("admin", f"/ui/build/{s.failed}/delete/"),
    # namespaces
    "/ui/namespaces": lambda s: Form(
        "admin", "/ui/namespaces/", scope="fresh/*", fields={"name": "fresh"}
    ),
    "/ui/namespace/{name}/roles": lambda s: Form(
        "admin", "/ui/namespace/team/roles/", fields={"other_namespace": "spare", "role": "viewer"}
    ),
    "/ui/namespace/{name}/roles/remove": lambda s: Form(
        "admin", "/ui/namespace/team/roles/remove/", fields={"other_namespace": "guests"}
    ),
    "/ui/namespace/{name}/mappings": lambda s: Form(
        "admin", "/ui/namespace/team/mappings/", fields={"mappings": "team/*: viewer"}
    ),
    "/ui/namespace/{name}/metadata": lambda s: Form(
        "admin", "/ui/namespace/team/metadata/", fields={"metadata": '{"owner": "data team"}'}
    ),
    "/ui/namespace/{name}/delete": lambda s: Form(
        "admin", "/ui/namespace/spare/delete/", scope="spare/*"
    ),
    # tokens
    # the new token is shown on the answer to the POST itself, once
    "/ui/tokens": lambda s: Form(
        "authenticated", "/ui/tokens/", fields={"name": "ci"}, succeeds=200
    ),
    "/ui/tokens/{token_id}/revoke": lambda s: Form(
        "own-token", f"/ui/tokens/{s.own_token_id}/revoke/", refused_status=404
    ),
    # settings (a save without changes still needs setting::update)
    "/ui/settings": lambda s: Form("admin", "/ui/settings/", scope="*/*"),
    "/ui/namespace/{namespace}/settings": lambda s: Form("admin", "/ui/namespace/team/settings/"),
    "/ui/environment/{namespace}/{environment}/settings": lambda s: Form(
        "admin", "/ui/environment/team/tool/settings/"
    ),
}


def form_routes(app: Litestar) -> Iterator[str]:
    """The path of every ``POST`` route under ``/ui``."""
    for route in app.routes:
        if not route.path.startswith("/ui"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if "POST" in handler.http_methods:
                yield route.path_format


def headers_and_token(
    callers: Callers, context: ApiContext, bindings: dict[str, list[str]] | None
) -> tuple[dict[str, str], str]:
    """Bearer headers of a new token granting ``bindings`` (None: anonymous) and that caller's
    form token."""
    if bindings is None:
        return {}, form_token(context.session_secret, None)
    token = callers.token(bindings)
    caller = Caller(context.policy, verify(token, secret=context.tokens.secret))
    return {"Authorization": f"Bearer {token}"}, form_token(context.session_secret, caller)


def post(api: Client, form: Form, headers: dict[str, str], csrf: str) -> tuple[int, str]:
    answer = api.post(
        form.path, data={"csrf": csrf, **form.fields}, headers=headers, follow_redirects=False
    )
    return answer.status_code, answer.headers.get("location", "") or answer.text[:200]


def refused_bindings(form: Form) -> dict[str, list[str]]:
    """A caller who must be refused: the role below on the scope, or the role elsewhere."""
    if form.role == "own-token":
        return {"elsewhere/*": ["viewer"]}  # another caller's token
    below = LADDER.index(form.role) - 1
    return {"elsewhere/*": ["admin"]} if below < 0 else {form.scope: [LADDER[below]]}


def test_every_ui_form_has_a_row_in_the_permission_table(api: Client) -> None:
    missing = sorted(set(form_routes(api.app)) - set(TABLE))
    assert not missing, f"form routes without a permission row: {missing}"
    stale = sorted(set(TABLE) - set(form_routes(api.app)))
    assert not stale, f"rows for routes that do not exist: {stale}"


def test_every_ui_form_refuses_callers_without_its_permission(
    api: Client, api_context: ApiContext, callers: Callers, state: State
) -> None:
    problems = []
    for route, row in sorted(TABLE.items()):
        form = row(state)
        headers, csrf = headers_and_token(callers, api_context, None)
        status, where = post(api, form, headers, csrf)
        if status != 303 or not where.startswith("/login/"):
            problems.append(f"{route}: anonymous got {status} {where}")
        if form.role == "authenticated":
            continue
        headers, csrf = headers_and_token(callers, api_context, refused_bindings(form))
        status, where = post(api, form, headers, csrf)
        if status != form.refused_status:
            problems.append(f"{route}: {refused_bindings(form)} got {status} {where}")
    assert not problems, "\n".join(problems)


def test_every_ui_form_works_for_callers_with_its_permission(
    api: Client, api_context: ApiContext, callers: Callers, state: State
) -> None:
    problems = []
    # changes last, and deletions after every other change (a deleted namespace is gone)
    rows = sorted(
        TABLE.items(), key=lambda item: (item[1](state).changes, "delete" in item[0], item[0])
    )
    for route, row in rows:
        form = row(state)
        if form.role == "own-token":
            headers = {"Authorization": f"Bearer {state.own_token}"}
            claims = verify(state.own_token, secret=api_context.tokens.secret)
            caller = Caller(api_context.policy, claims)
            csrf = form_token(api_context.session_secret, caller)
        elif form.role == "authenticated":
            headers, csrf = headers_and_token(callers, api_context, {"elsewhere/*": ["viewer"]})
        else:
            headers, csrf = headers_and_token(callers, api_context, {form.scope: [form.role]})
        status, where = post(api, form, headers, csrf)
        if status != form.succeeds:
            problems.append(f"{route}: {form.role} on {form.scope} got {status} {where}")
    assert not problems, "\n".join(problems)

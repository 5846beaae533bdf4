"""Every API route, allowed and refused: a table says what each route needs, and the tests walk
the app's own route table, so a new route without a row here fails the suite.

A row names the role a caller needs and where (``team/*`` unless said otherwise). For each
route the tests check that

- an anonymous caller is refused with 401 (unless the route is public),
- a caller holding only the role just below (or the role elsewhere) is refused with 403,
- a caller holding the role is not refused (any answer but 401 and 403).

Listings are filtered rather than refused: anonymous callers and callers without a binding on
``team`` get an answer that does not show ``team``'s objects. All checks run against one state
with real builds (one completed and current, one failed, one queued), refusals first and
changes last, so that a route's allowed call does not disturb the next route's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.auth.tokens import verify
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.integration.test_api_builds import TOOL, UNSATISFIABLE, Builds

Client = TestClient[Litestar]

#: The order roles rise in; the role below a row's role is the refused caller's.
LADDER = ("viewer", "editor", "admin")


@dataclass(frozen=True)
class State:
    """What the routes act on."""

    completed: int  # team/tool's current build
    failed: int  # team/broken's failed build
    queued: int  # team/tool's queued build (cancelable)
    own_token_id: str = ""
    own_token: str = ""


@dataclass(frozen=True)
class Rule:
    """What a route needs.

    ``role`` None: public (anyone, anonymous too). ``"authenticated"``: any logged-in caller.
    Otherwise the role on ``scope``. ``listing``: filtered, never refused.
    """

    role: str | None
    scope: str = "team/*"
    path: str = ""
    body: Any = None
    listing: bool = False
    #: Changes state: checked after every other route.
    changes: bool = False
    #: What a refused caller gets (404 where a 403 would reveal that the object exists).
    refused_status: int = 403
    #: What an anonymous caller gets, when it is not a success (public routes) or a 401.
    anonymous_status: int | None = None
    query: dict[str, Any] = field(default_factory=dict)


def environment_artifact(leaf: str) -> Callable[[State], Rule]:
    """The row of an environment's artifact route ``leaf`` (rows made in a loop)."""
    return lambda s: Rule("viewer", path=f"/api/v1/environment/team/tool/{leaf}")


def build_artifact(leaf: str) -> Callable[[State], Rule]:
    """The row of a build's artifact route ``leaf`` (rows made in a loop)."""
    return lambda s: Rule("viewer", path=f"/api/v1/build/{s.completed}/{leaf}")


SPEC = {"namespace": "team", "specification": TOOL.format(name="tool") + "\n# rebuilt\n"}

#: (method, route path) -> rule, with the path filled for the state.
TABLE: dict[tuple[str, str], Callable[[State], Rule]] = {
    ("GET", "/api/v1"): lambda s: Rule(None, path="/api/v1/"),
    ("GET", "/api/v1/permission"): lambda s: Rule(None, path="/api/v1/permission/"),
    ("GET", "/api/v1/usage"): lambda s: Rule(None, path="/api/v1/usage/", listing=True),
    ("GET", "/api/v1/channel"): lambda s: Rule(None, path="/api/v1/channel/"),
    ("GET", "/api/v1/package"): lambda s: Rule(None, path="/api/v1/package/"),
    # namespaces
    ("GET", "/api/v1/namespace"): lambda s: Rule(None, path="/api/v1/namespace/", listing=True),
    ("GET", "/api/v1/namespace/{namespace}"): lambda s: Rule(
        "viewer", path="/api/v1/namespace/team/"
    ),
    ("POST", "/api/v1/namespace/{namespace}"): lambda s: Rule(
        "admin", scope="fresh/*", path="/api/v1/namespace/fresh/", changes=True
    ),
    ("PUT", "/api/v1/namespace/{namespace}"): lambda s: Rule(
        "admin", path="/api/v1/namespace/team/", body={"metadata": {"a": 1}}, changes=True
    ),
    ("PUT", "/api/v1/namespace/{namespace}/metadata"): lambda s: Rule(
        "admin", path="/api/v1/namespace/team/metadata", body={"a": 1}, changes=True
    ),
    ("DELETE", "/api/v1/namespace/{namespace}"): lambda s: Rule(
        "admin", scope="spare/*", path="/api/v1/namespace/spare/", changes=True
    ),
    ("GET", "/api/v1/namespace/{namespace}/roles"): lambda s: Rule(
        "viewer", path="/api/v1/namespace/team/roles"
    ),
    ("DELETE", "/api/v1/namespace/{namespace}/roles"): lambda s: Rule(
        "admin", path="/api/v1/namespace/team/roles", changes=True
    ),
    ("GET", "/api/v1/namespace/{namespace}/role"): lambda s: Rule(
        "viewer", path="/api/v1/namespace/team/role", query={"other_namespace": "guests"}
    ),
    ("POST", "/api/v1/namespace/{namespace}/role"): lambda s: Rule(
        "admin",
        path="/api/v1/namespace/team/role",
        body={"other_namespace": "spare", "role": "viewer"},
        changes=True,
    ),
    ("PUT", "/api/v1/namespace/{namespace}/role"): lambda s: Rule(
        "admin",
        path="/api/v1/namespace/team/role",
        body={"other_namespace": "guests", "role": "editor"},
        changes=True,
    ),
    ("DELETE", "/api/v1/namespace/{namespace}/role"): lambda s: Rule(
        "admin",
        path="/api/v1/namespace/team/role",
        body={"other_namespace": "guests"},
        changes=True,
    ),
    # environments
    ("GET", "/api/v1/environment"): lambda s: Rule(None, path="/api/v1/environment/", listing=True),
    ("GET", "/api/v2/environment"): lambda s: Rule(None, path="/api/v2/environment/", listing=True),
    ("GET", "/api/v1/environment/{namespace}/{environment}"): lambda s: Rule(
        "viewer", path="/api/v1/environment/team/tool/"
    ),
    ("PUT", "/api/v1/environment/{namespace}/{environment}"): lambda s: Rule(
        "editor",
        path="/api/v1/environment/team/tool/",
        body={"description": "changed"},
        changes=True,
    ),
    ("DELETE", "/api/v1/environment/{namespace}/{environment}"): lambda s: Rule(
        "admin", path="/api/v1/environment/team/broken/", changes=True
    ),
    **{
        ("GET", f"/api/v1/environment/{{namespace}}/{{environment}}/{leaf}"): (
            environment_artifact(leaf)
        )
        for leaf in ("lockfile", "conda-lock.yml", "conda-lock.yaml")
    },
    # specifications
    ("POST", "/api/v1/specification"): lambda s: Rule(
        "editor", path="/api/v1/specification/", body=SPEC, changes=True
    ),
    ("GET", "/api/v1/specification"): lambda s: Rule(
        "editor",
        scope="default/*",  # solving is checked on the caller's primary namespace
        path="/api/v1/specification/",
        query={"conda": "kiln-demo-tool"},
    ),
    # builds
    ("GET", "/api/v1/build"): lambda s: Rule(None, path="/api/v1/build/", listing=True),
    ("GET", "/api/v1/build/{build_id}"): lambda s: Rule(
        "viewer", path=f"/api/v1/build/{s.completed}/"
    ),
    ("PUT", "/api/v1/build/{build_id}"): lambda s: Rule(
        "editor", path=f"/api/v1/build/{s.completed}/", changes=True
    ),
    ("PUT", "/api/v1/build/{build_id}/cancel"): lambda s: Rule(
        "editor", path=f"/api/v1/build/{s.queued}/cancel/", changes=True
    ),
    ("DELETE", "/api/v1/build/{build_id}"): lambda s: Rule(
        "admin", path=f"/api/v1/build/{s.failed}/", changes=True
    ),
    ("GET", "/api/v1/build/{build_id}/packages"): lambda s: Rule(
        "viewer", path=f"/api/v1/build/{s.completed}/packages/"
    ),
    **{
        ("GET", f"/api/v1/build/{{build_id}}/{leaf}"): build_artifact(leaf)
        for leaf in (
            "logs",
            "yaml",
            "lockfile",
            "conda-lock.yml",
            "conda-lock.yaml",
            "archive",
            "installer",
            "docker",
        )
    },
    # settings: the global level needs the role on every namespace
    ("GET", "/api/v1/setting"): lambda s: Rule("editor", scope="*/*", path="/api/v1/setting/"),
    ("PUT", "/api/v1/setting"): lambda s: Rule(
        "admin",
        scope="*/*",
        path="/api/v1/setting/",
        body={"conda_included_packages": []},
        changes=True,
    ),
    ("GET", "/api/v1/setting/{namespace}"): lambda s: Rule("editor", path="/api/v1/setting/team/"),
    ("PUT", "/api/v1/setting/{namespace}"): lambda s: Rule(
        "admin",
        path="/api/v1/setting/team/",
        body={"conda_included_packages": []},
        changes=True,
    ),
    ("GET", "/api/v1/setting/{namespace}/{environment}"): lambda s: Rule(
        "editor", path="/api/v1/setting/team/tool/"
    ),
    ("PUT", "/api/v1/setting/{namespace}/{environment}"): lambda s: Rule(
        "admin",
        path="/api/v1/setting/team/tool/",
        body={"conda_included_packages": []},
        changes=True,
    ),
    # tokens: any logged-in caller lists and mints their own (never wider than themselves)
    ("GET", "/api/v1/token"): lambda s: Rule("authenticated", path="/api/v1/token/"),
    ("POST", "/api/v1/token"): lambda s: Rule(
        "authenticated",
        path="/api/v1/token/",
        body={},
        changes=True,
        anonymous_status=400,  # conda-store's client reads refusals only from a 400
    ),
    ("DELETE", "/api/v1/token/{token_id}"): lambda s: Rule(
        "own-token", path=f"/api/v1/token/{s.own_token_id}/", changes=True, refused_status=404
    ),
    # the first admin: public, guarded by the one-time setup token
    ("POST", "/api/v1/setup"): lambda s: Rule(
        None,
        path="/api/v1/setup/",
        body={"setup_token": "wrong", "username": "root", "password": "long enough"},
        anonymous_status=403,  # the wrong setup token: tested in test_api_login.py
    ),
    # the admin API: operators only (an admin account, or the admin role on every namespace);
    # without a supervisor a restart answers 409, unknown jobs 404: neither is a refusal
    ("GET", "/api/v1/admin/services"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/services/"
    ),
    ("POST", "/api/v1/admin/services/{service}/restart"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/services/web/restart/", changes=True
    ),
    ("GET", "/api/v1/admin/queue"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/queue/"
    ),
    ("GET", "/api/v1/admin/storage"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/storage/"
    ),
    ("GET", "/api/v1/admin/jobs"): lambda s: Rule("admin", scope="*/*", path="/api/v1/admin/jobs/"),
    ("GET", "/api/v1/admin/jobs/{job_id}"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/jobs/1/"
    ),
    ("POST", "/api/v1/admin/jobs/{job_id}/retry"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/jobs/1/retry/", changes=True
    ),
    ("POST", "/api/v1/admin/jobs/{job_id}/cancel"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/jobs/1/cancel/", changes=True
    ),
    ("GET", "/api/v1/admin/config"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/config/"
    ),
    ("PATCH", "/api/v1/admin/config"): lambda s: Rule(
        "admin",
        scope="*/*",
        path="/api/v1/admin/config/",
        body={"class": "CondaStoreWorker", "option": "concurrency", "value": 2, "dry_run": True},
        changes=True,
    ),
    # accounts: an unknown account answers 404, which is not a refusal
    ("GET", "/api/v1/admin/users"): lambda s: Rule(
        "admin", scope="*/*", path="/api/v1/admin/users/"
    ),
    ("POST", "/api/v1/admin/users"): lambda s: Rule(
        "admin",
        scope="*/*",
        path="/api/v1/admin/users/",
        body={"username": "newcomer", "password": "long enough", "is_admin": False},
        changes=True,
    ),
    ("PATCH", "/api/v1/admin/users/{username}"): lambda s: Rule(
        "admin",
        scope="*/*",
        path="/api/v1/admin/users/nobody/",
        body={"disabled": True},
        changes=True,
    ),
    ("GET", "/api/v1/admin/logs"): lambda s: Rule("admin", scope="*/*", path="/api/v1/admin/logs/"),
    # logging in and out: public by nature (tests/integration/test_api_login.py and _oauth.py)
    ("GET", "/login"): lambda s: Rule(None, path="/login/"),
    ("POST", "/login"): lambda s: Rule(
        None,
        path="/login/",
        body={"username": "nobody", "password": "wrong password"},
        anonymous_status=403,
    ),
    ("GET", "/logout"): lambda s: Rule(None, path="/logout/"),
    ("POST", "/logout"): lambda s: Rule(None, path="/logout/"),
    ("GET", "/oauth_callback"): lambda s: Rule(
        None,
        path="/oauth_callback/",
        anonymous_status=404,  # local accounts: there is no OAuth callback here
    ),
}


# --- state ---------------------------------------------------------------------------------


@pytest.fixture
def state(
    db_sessions: sessionmaker[Session],
    api_context: ApiContext,
    database: TestDatabase,
    api: Client,
    callers: Callers,
) -> State:
    builds = Builds(db_sessions, api_context, database)
    for name in ("team", "guests", "spare"):
        assert api.post(f"/api/v1/namespace/{name}/", headers=callers.admin).status_code == 200
    grant = {"other_namespace": "guests", "role": "viewer"}
    api.post("/api/v1/namespace/team/role", json=grant, headers=callers.admin)
    completed = builds.submit(TOOL, "tool", "team")
    failed = builds.submit(UNSATISFIABLE, "broken", "team")
    builds.run_queued()
    queued = builds.submit(TOOL.replace("tool\n", "tool\n  - kiln-demo-data\n"), "tool", "team")
    own = callers.token({"elsewhere/*": ["viewer"]})
    own_id = verify(own, secret=api_context.tokens.secret).token_id
    return State(
        completed=completed, failed=failed, queued=queued, own_token_id=own_id, own_token=own
    )


def api_routes(app: Litestar) -> Iterator[tuple[str, str]]:
    """(method, path) of every documented API route."""
    for route in app.routes:
        if not route.path.startswith(("/api/", "/login", "/logout", "/oauth_callback")):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if not handler.include_in_schema:
                continue
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    yield method, route.path_format


def call(api: Client, method: str, rule: Rule, headers: dict[str, str]) -> Any:
    options: dict[str, Any] = {"headers": headers, "params": rule.query}
    if rule.body is not None:
        options["content"] = json.dumps(rule.body)
        options["headers"] = {**headers, "Content-Type": "application/json"}
    return api.request(method, rule.path, **options)


def refused_role(rule: Rule) -> tuple[str, list[str]]:
    """The binding of a caller who must be refused: the role below, or the role elsewhere."""
    assert rule.role in LADDER
    below = LADDER.index(rule.role) - 1
    if below < 0:
        return "elsewhere/*", ["admin"]
    return rule.scope, [LADDER[below]]


# --- the tests -----------------------------------------------------------------------------


def test_every_api_route_has_a_row_in_the_permission_table(api: Client) -> None:
    missing = sorted(set(api_routes(api.app)) - set(TABLE))
    assert not missing, f"routes without a permission row: {missing}"
    stale = sorted(set(TABLE) - set(api_routes(api.app)))
    assert not stale, f"rows for routes that do not exist: {stale}"


def test_every_route_refuses_callers_without_its_permission(
    api: Client, callers: Callers, state: State
) -> None:
    problems = []
    for (method, route), row in sorted(TABLE.items()):
        rule = row(state)
        anonymous = call(api, method, rule, {})
        if rule.role is None:
            expected = rule.anonymous_status
            if expected is not None and anonymous.status_code != expected:
                problems.append(f"{method} {route}: anonymous got {anonymous.status_code}")
            if expected is None and anonymous.status_code in (401, 403):
                problems.append(f"{method} {route}: public, but anonymous got {anonymous}")
            if rule.listing and anonymous.json()["data"]:
                problems.append(f"{method} {route}: anonymous saw team's objects")
            continue
        if anonymous.status_code != (rule.anonymous_status or 401):
            problems.append(f"{method} {route}: anonymous got {anonymous.status_code}")
        if rule.role == "authenticated":
            continue
        if rule.role == "own-token":
            scope, roles = "elsewhere/*", ["viewer"]  # another caller's token
        else:
            scope, roles = refused_role(rule)
        refused = call(api, method, rule, callers.headers({scope: roles}))
        if refused.status_code != rule.refused_status:
            problems.append(
                f"{method} {route}: {scope}={roles} got {refused.status_code} {refused.text[:120]}"
            )
    assert not problems, "\n".join(problems)


def test_every_route_allows_callers_with_its_permission(
    api: Client, callers: Callers, state: State
) -> None:
    problems = []
    rows = sorted(TABLE.items(), key=lambda item: (item[1](state).changes, item[0]))
    for (method, route), row in rows:
        rule = row(state)
        if rule.role is None:
            headers = callers.headers({"team/*": ["viewer"]})
        elif rule.role == "own-token":
            headers = {"Authorization": f"Bearer {state.own_token}"}
        elif rule.role == "authenticated":
            headers = callers.headers({"elsewhere/*": ["viewer"]})
        else:
            headers = callers.headers({rule.scope: [rule.role]})
        answer = call(api, method, rule, headers)
        if rule.role is None and rule.anonymous_status is not None:
            continue  # a public route whose success needs a secret (the setup token)
        if answer.status_code in (401, 403) or answer.status_code >= 500:
            problems.append(f"{method} {route}: got {answer.status_code} {answer.text[:160]}")
        elif rule.listing and not answer.json()["data"]:
            problems.append(f"{method} {route}: a viewer of team does not see team's objects")
    assert not problems, "\n".join(problems)

"""The web UI's namespace pages on the real app and database: creating a namespace, its role
mappings (v2 grants and v1 mappings), its metadata, and deleting it; each for a caller whose
roles allow it, refused for one whose roles do not, and bad input named and changing nothing."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import Callers
from tests.fixtures.ui import csrf_of, submit_form, text_of

Client = TestClient[Litestar]


def _namespaces(api: Client, headers: Mapping[str, str]) -> list[str]:
    answer = api.get("/api/v1/namespace/", headers=dict(headers), params={"size": 100})
    assert answer.status_code == 200, answer.text
    return [item["name"] for item in answer.json()["data"]]


def _namespace(api: Client, headers: Mapping[str, str], name: str) -> Any:
    answer = api.get(f"/api/v1/namespace/{name}/", headers=dict(headers))
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def _grants(api: Client, headers: Mapping[str, str], name: str) -> dict[str, str]:
    answer = api.get(f"/api/v1/namespace/{name}/roles", headers=dict(headers))
    assert answer.status_code == 200, answer.text
    return {grant["other_namespace"]: grant["role"] for grant in answer.json()["data"]}


def _create(api: Client, headers: Mapping[str, str], *names: str) -> None:
    for name in names:
        assert api.post(f"/api/v1/namespace/{name}/", headers=dict(headers)).status_code == 200


def _csrf(api: Client, headers: Mapping[str, str]) -> str:
    """The caller's form token, from a page every logged-in caller gets a form on."""
    return csrf_of(api.get("/ui/tokens/new/", headers=dict(headers)).text)


# --- creating -------------------------------------------------------------------------


def test_an_admin_creates_a_namespace_from_the_list(api: Client, callers: Callers) -> None:
    admin = callers.admin
    listing = api.get("/ui/namespaces/", headers=admin)
    assert 'href="/ui/namespaces/new/"' in listing.text
    form = api.get("/ui/namespaces/new/", headers=admin)
    assert '<label for="name">Name' in form.text and 'action="/ui/namespaces/"' in form.text

    answer = submit_form(api, "/ui/namespaces/new/", "/ui/namespaces/", {"name": "lab"}, admin)
    assert answer.status_code == 303, text_of(answer.text)
    assert answer.headers["location"] == "/ui/namespace/lab/?done=created"
    assert _namespaces(api, admin) == ["lab"]
    page = api.get(answer.headers["location"], headers=admin)
    assert page.status_code == 200
    assert "Created." in text_of(page.text)
    assert 'href="/ui/namespace/lab/"' in api.get("/ui/namespaces/", headers=admin).text


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("", 400, "the namespace name cannot be empty"),
        ("bad name", 400, "contains ' '"),
        ("../etc", 400, "contains '..'"),
        ("a/b", 400, "contains '/'"),
        ("-dash", 400, "starts with '-'"),
        ("taken", 409, "namespace taken already exists"),
    ],
)
def test_a_bad_namespace_name_is_named_and_creates_nothing(
    api: Client, callers: Callers, name: str, status: int, says: str
) -> None:
    admin = callers.admin
    _create(api, admin, "taken")
    answer = submit_form(api, "/ui/namespaces/new/", "/ui/namespaces/", {"name": name}, admin)
    assert answer.status_code == status
    text = text_of(answer.text)
    assert says in text, text
    assert "names use letters, digits" in text or status == 409
    assert f'value="{escape(name)}"' in answer.text  # what was entered is kept
    assert _namespaces(api, admin) == ["taken"]


def test_a_caller_who_may_not_create_namespaces_gets_no_form_and_a_403(
    api: Client, callers: Callers
) -> None:
    viewer = callers.headers({"team/*": ["viewer"]})
    page = api.get("/ui/namespaces/new/", headers=viewer)
    assert page.status_code == 200
    assert 'action="/ui/namespaces/"' not in page.text
    assert "do not allow creating namespaces" in text_of(page.text)
    answer = api.post(
        "/ui/namespaces/", data={"csrf": _csrf(api, viewer), "name": "team"}, headers=viewer
    )
    assert answer.status_code == 403
    assert "namespace::create" in text_of(answer.text)
    assert _namespaces(api, callers.admin) == []


def test_a_form_without_the_callers_token_is_refused(api: Client, callers: Callers) -> None:
    admin = callers.admin
    for data in ({"name": "lab"}, {"name": "lab", "csrf": "0" * 64}):
        answer = api.post("/ui/namespaces/", data=data, headers=admin)
        assert answer.status_code == 403
        assert "reload the page" in text_of(answer.text)
    other = callers.admin  # another token: another form token
    answer = api.post(
        "/ui/namespaces/", data={"name": "lab", "csrf": _csrf(api, other)}, headers=admin
    )
    assert answer.status_code == 403
    assert _namespaces(api, admin) == []


def test_anonymous_callers_are_asked_to_log_in(api: Client) -> None:
    page = api.get("/ui/namespaces/new/")
    assert page.status_code == 200
    assert 'href="/login/?next=%2Fui%2Fnamespaces%2Fnew%2F"' in page.text
    assert 'action="/ui/namespaces/"' not in page.text
    assert 'href="/ui/namespaces/new/"' not in api.get("/ui/namespaces/").text
    answer = api.post("/ui/namespaces/", data={"csrf": "x", "name": "lab"}, follow_redirects=False)
    assert answer.status_code == 403


# --- the namespace page and its role mappings ----------------------------------------------


def test_the_namespace_page_shows_controls_only_to_those_allowed(
    api: Client, callers: Callers
) -> None:
    _create(api, callers.admin, "team")
    admin = api.get("/ui/namespace/team/", headers=callers.admin)
    assert admin.status_code == 200
    for control in (
        'href="/ui/?namespace=team"',
        'href="/ui/namespace/team/settings/"',
        'href="/ui/namespace/team/delete/"',
        'action="/ui/namespace/team/roles/"',
        'action="/ui/namespace/team/mappings/"',
        'action="/ui/namespace/team/metadata/"',
    ):
        assert control in admin.text, control

    viewer = api.get("/ui/namespace/team/", headers=callers.headers({"team/*": ["viewer"]}))
    assert viewer.status_code == 200
    assert 'href="/ui/?namespace=team"' in viewer.text
    for control in ("team/settings/", "/delete/", "/roles/", "/mappings/", "/metadata/", "csrf"):
        assert control not in viewer.text, control
    assert "No other namespace has a role here." in text_of(viewer.text)

    stranger = api.get("/ui/namespace/team/", headers=callers.headers({"other/*": ["admin"]}))
    assert stranger.status_code == 403
    assert api.get("/ui/namespace/nowhere/", headers=callers.admin).status_code == 404


def test_an_admin_gives_changes_and_removes_another_namespaces_role(
    api: Client, callers: Callers
) -> None:
    admin = callers.admin
    _create(api, admin, "team", "bob")
    bob = callers.session_headers("bob")  # primary namespace: bob
    assert api.get("/api/v1/namespace/team/", headers=bob).status_code == 403
    page = "/ui/namespace/team/"

    given = submit_form(
        api, page, f"{page}roles/", {"other_namespace": "bob", "role": "viewer"}, admin
    )
    assert given.status_code == 303, text_of(given.text)
    assert given.headers["location"] == f"{page}?done=granted"
    assert _grants(api, admin, "team") == {"bob": "viewer"}
    assert api.get("/api/v1/namespace/team/", headers=bob).status_code == 200
    shown = api.get(page, headers=admin).text
    assert "Change role of bob" in shown and "Remove the role of bob" in shown

    again = submit_form(
        api, page, f"{page}roles/", {"other_namespace": "bob", "role": "editor"}, admin
    )
    assert again.status_code == 409
    assert "already has the role viewer" in text_of(again.text)
    changed = submit_form(
        api, page, f"{page}roles/",
        {"other_namespace": "bob", "role": "editor", "change": "1"}, admin,
    )  # fmt: skip
    assert changed.status_code == 303
    assert _grants(api, admin, "team") == {"bob": "editor"}

    removed = submit_form(api, page, f"{page}roles/remove/", {"other_namespace": "bob"}, admin)
    assert removed.status_code == 303
    assert removed.headers["location"] == f"{page}?done=ungranted"
    assert _grants(api, admin, "team") == {}
    assert api.get("/api/v1/namespace/team/", headers=bob).status_code == 403


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"other_namespace": "bob", "role": "boss"}, 400, "unknown role 'boss'; allowed:"),
        ({"other_namespace": "nowhere", "role": "viewer"}, 404, "namespace nowhere does not"),
        ({"other_namespace": "", "role": "viewer"}, 400, "name the other namespace"),
    ],
)
def test_a_bad_role_grant_is_named_and_changes_nothing(
    api: Client, callers: Callers, fields: dict[str, str], status: int, says: str
) -> None:
    admin = callers.admin
    _create(api, admin, "team", "bob")
    page = "/ui/namespace/team/"
    answer = submit_form(api, page, f"{page}roles/", fields, admin)
    assert answer.status_code == status
    assert says in text_of(answer.text)
    assert 'aria-invalid="true"' in answer.text
    assert _grants(api, admin, "team") == {}


def test_a_viewer_cannot_change_role_mappings_by_posting_directly(
    api: Client, callers: Callers
) -> None:
    admin = callers.admin
    _create(api, admin, "team", "bob")
    assert api.post(
        "/api/v1/namespace/team/role", json={"other_namespace": "bob", "role": "viewer"},
        headers=admin,
    ).status_code == 200  # fmt: skip
    viewer = callers.headers({"team/*": ["viewer"]})
    csrf = _csrf(api, viewer)
    for action, data in (
        ("roles/", {"other_namespace": "bob", "role": "admin"}),
        ("roles/", {"other_namespace": "bob", "role": "admin", "change": "1"}),
        ("roles/remove/", {"other_namespace": "bob"}),
        ("mappings/", {"mappings": "*/*: admin"}),
        ("metadata/", {"metadata": '{"owner": "mallory"}'}),
    ):
        answer = api.post(
            f"/ui/namespace/team/{action}", data={"csrf": csrf, **data}, headers=viewer
        )
        assert answer.status_code == 403, action
        assert "not authorized" in text_of(answer.text)
    detail = _namespace(api, admin, "team")
    assert detail["role_mappings"] == [] and detail["metadata_"] == {}
    assert _grants(api, admin, "team") == {"bob": "viewer"}


def test_an_admin_replaces_the_v1_role_mappings_and_the_metadata(
    api: Client, callers: Callers
) -> None:
    admin = callers.admin
    _create(api, admin, "team")
    page = "/ui/namespace/team/"
    text = "# who may do what\nlab/*: viewer\nteam/web: editor, viewer\n\n"
    answer = submit_form(api, page, f"{page}mappings/", {"mappings": text}, admin)
    assert answer.status_code == 303, text_of(answer.text)
    mappings = {(m["entity"], m["role"]) for m in _namespace(api, admin, "team")["role_mappings"]}
    assert mappings == {("lab/*", "viewer"), ("team/web", "editor"), ("team/web", "viewer")}
    shown = api.get(page, headers=admin).text
    assert "lab/*: viewer\nteam/web: editor, viewer" in shown

    answer = submit_form(
        api, page, f"{page}metadata/", {"metadata": '{"owner": "data team"}'}, admin
    )
    assert answer.status_code == 303
    assert _namespace(api, admin, "team")["metadata_"] == {"owner": "data team"}

    cleared = submit_form(api, page, f"{page}mappings/", {"mappings": ""}, admin)
    assert cleared.status_code == 303
    assert _namespace(api, admin, "team")["role_mappings"] == []


@pytest.mark.parametrize(
    ("action", "field", "value", "says"),
    [
        ("mappings/", "mappings", "lab/*: viewer\nnonsense", "line 2 ('nonsense'): expected"),
        ("mappings/", "mappings", "lab/*: boss", "unknown role 'boss'"),
        ("mappings/", "mappings", "lab: viewer", "expected '<namespace>/<environment>'"),
        ("metadata/", "metadata", "{owner: x}", "the metadata is not valid JSON"),
        ("metadata/", "metadata", "[1, 2]", "metadata must be a JSON object"),
    ],
)
def test_bad_mappings_or_metadata_are_named_and_change_nothing(
    api: Client, callers: Callers, action: str, field: str, value: str, says: str
) -> None:
    admin = callers.admin
    _create(api, admin, "team")
    page = "/ui/namespace/team/"
    answer = submit_form(api, page, f"{page}{action}", {field: value}, admin)
    assert answer.status_code == 400
    assert says in text_of(answer.text)
    assert value.split("\n")[-1] in text_of(answer.text)  # what was entered is kept
    detail = _namespace(api, admin, "team")
    assert detail["role_mappings"] == [] and detail["metadata_"] == {}


# --- deleting -------------------------------------------------------------------------


def test_an_admin_deletes_a_namespace_after_confirming(api: Client, callers: Callers) -> None:
    admin = callers.admin
    spec = {"namespace": "team", "specification": "name: web\ndependencies:\n  - kiln-demo-tool\n"}
    assert api.post("/api/v1/specification/", json=spec, headers=admin).status_code == 200
    confirm = api.get("/ui/namespace/team/delete/", headers=admin)
    assert confirm.status_code == 200
    text = text_of(confirm.text)
    assert "Delete the namespace team?" in text and "1 environment with 1 build" in text
    assert "Delete namespace team" in text and "Keep it" in text

    answer = submit_form(api, "/ui/namespace/team/delete/", "/ui/namespace/team/delete/", {}, admin)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/namespaces/?done=deleted"
    assert _namespaces(api, admin) == []
    assert api.get("/ui/namespace/team/", headers=admin).status_code == 404


def test_a_caller_without_namespace_delete_cannot_delete_it(api: Client, callers: Callers) -> None:
    admin = callers.admin
    _create(api, admin, "team")
    editor = callers.headers({"team/*": ["editor"]})
    confirm = api.get("/ui/namespace/team/delete/", headers=editor)
    assert confirm.status_code == 200
    assert "do not allow deleting" in text_of(confirm.text)
    assert 'action="/ui/namespace/team/delete/"' not in confirm.text
    answer = api.post(
        "/ui/namespace/team/delete/", data={"csrf": _csrf(api, editor)}, headers=editor
    )
    assert answer.status_code == 403
    assert "namespace::delete" in text_of(answer.text)
    assert _namespaces(api, admin) == ["team"]

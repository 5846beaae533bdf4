"""Namespaces through the REST API: what each role may do, and conda-store's envelopes."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import Callers


def test_an_admin_creates_reads_lists_and_deletes_a_namespace(
    api: TestClient[Litestar], callers: Callers
) -> None:
    admin = callers.admin
    created = api.post("/api/v1/namespace/science/", headers=admin)
    assert created.status_code == 200, created.text
    assert created.json()["data"]["name"] == "science"

    again = api.post("/api/v1/namespace/science/", headers=admin)
    assert again.status_code == 409
    assert again.json() == {
        "status": "error",
        "message": "namespace science already exists",
        "code": "conflict",
    }

    got = api.get("/api/v1/namespace/science/", headers=admin).json()
    assert got["data"] == {"id": got["data"]["id"], "name": "science", "metadata_": {},
                           "role_mappings": []}  # fmt: skip

    listed = api.get("/api/v1/namespace/", headers=admin).json()
    assert listed["status"] == "ok"
    assert (listed["page"], listed["size"], listed["count"]) == (1, 100, 1)
    assert [item["name"] for item in listed["data"]] == ["science"]

    assert api.delete("/api/v1/namespace/science/", headers=admin).status_code == 200
    assert api.get("/api/v1/namespace/science/", headers=admin).status_code == 404


def test_listing_shows_only_namespaces_the_caller_has_a_binding_on(
    api: TestClient[Litestar], callers: Callers
) -> None:
    for name in ("alpha", "beta", "gamma_1", "gammax1"):
        assert api.post(f"/api/v1/namespace/{name}/", headers=callers.admin).status_code == 200
    viewer = callers.headers({"beta/*": ["viewer"], "gamma_*/*": ["viewer"]})
    names = [n["name"] for n in api.get("/api/v1/namespace/", headers=viewer).json()["data"]]
    # '_' in a pattern is a literal, not SQL's single-character wildcard.
    assert names == ["beta", "gamma_1"]


def test_a_viewer_reads_but_cannot_change_and_anonymous_is_asked_to_log_in(
    api: TestClient[Litestar], callers: Callers
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    viewer = callers.headers({"team/*": ["viewer"]})
    assert api.get("/api/v1/namespace/team/", headers=viewer).status_code == 200
    refused = api.put("/api/v1/namespace/team/metadata", json={"a": 1}, headers=viewer)
    assert refused.status_code == 403
    assert "namespace::update" in refused.json()["message"]
    assert api.get("/api/v1/namespace/team/").status_code == 401


def test_v1_role_mappings_and_metadata_are_replaced_together(
    api: TestClient[Litestar], callers: Callers
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    body = {"metadata": {"owner": "ada"}, "role_mappings": {"team/*": ["editor"]}}
    updated = api.put("/api/v1/namespace/team/", json=body, headers=callers.admin)
    assert updated.status_code == 200, updated.text
    data = updated.json()["data"]
    assert data["metadata_"] == {"owner": "ada"}
    assert [(m["entity"], m["role"]) for m in data["role_mappings"]] == [("team/*", "editor")]

    bad = api.put(
        "/api/v1/namespace/team/", json={"role_mappings": {"team/*": ["owner"]}},
        headers=callers.admin,
    )  # fmt: skip
    assert bad.status_code == 400
    assert "unknown role 'owner'" in bad.json()["message"]
    still = api.get("/api/v1/namespace/team/", headers=callers.admin).json()["data"]
    assert len(still["role_mappings"]) == 1


def test_v2_role_grants_give_another_namespace_s_users_a_role(
    api: TestClient[Litestar], callers: Callers
) -> None:
    for name in ("lab", "bob"):
        api.post(f"/api/v1/namespace/{name}/", headers=callers.admin)
    bob = callers.session_headers("bob")
    assert api.get("/api/v1/namespace/lab/", headers=bob).status_code == 403

    grant = {"other_namespace": "bob", "role": "viewer"}
    created = api.post("/api/v1/namespace/lab/role", json=grant, headers=callers.admin)
    assert created.status_code == 200, created.text
    assert api.get("/api/v1/namespace/lab/", headers=bob).status_code == 200

    got = api.get("/api/v1/namespace/lab/role?other_namespace=bob", headers=callers.admin)
    assert got.json()["data"]["role"] == "viewer"
    listed = api.get("/api/v1/namespace/lab/roles", headers=callers.admin).json()["data"]
    assert [(g["namespace"], g["other_namespace"], g["role"]) for g in listed] == [
        ("lab", "bob", "viewer")
    ]
    removed = api.request(
        "DELETE", "/api/v1/namespace/lab/role", json={"other_namespace": "bob"},
        headers=callers.admin,
    )  # fmt: skip
    assert removed.status_code == 200
    assert api.get("/api/v1/namespace/lab/", headers=bob).status_code == 403


def test_bad_namespace_names_are_refused_with_the_rule(
    api: TestClient[Litestar], callers: Callers
) -> None:
    for name in ("a..b", "semi;colon", "-dash", "x" * 300, "sp ace", "ünï", "a$b"):
        response = api.post(f"/api/v1/namespace/{name}/", headers=callers.admin)
        assert response.status_code == 400, (name, response.text)
        assert "names use letters, digits" in response.json()["message"]
    assert api.get("/api/v1/namespace/", headers=callers.admin).json()["count"] == 0

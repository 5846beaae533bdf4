"""Tokens through the REST API: minting only narrows, listing shows records (never tokens),
revoking ends a token at its next request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.models import ApiToken
from tests.fixtures.api import Callers


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count(db_sessions: sessionmaker[Session]) -> int:
    with db_sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ApiToken)) or 0)


def test_a_user_mints_a_narrower_token_that_works_with_exactly_its_rights(
    api: TestClient[Litestar], callers: Callers
) -> None:
    alice = callers.session_headers("alice")
    api.post("/api/v1/namespace/alice/", headers=callers.admin)
    minted = api.post(
        "/api/v1/token/",
        json={"role_bindings": {"alice/*": ["viewer"]}, "name": "laptop"},
        headers=alice,
    )
    assert minted.status_code == 200, minted.text
    token = minted.json()["data"]["token"]
    assert api.get("/api/v1/namespace/alice/", headers=_bearer(token)).status_code == 200
    refused = api.delete("/api/v1/namespace/alice/", headers=_bearer(token))
    assert refused.status_code == 403
    roles = api.get("/api/v1/permission/", headers=_bearer(token)).json()["data"]["entity_roles"]
    assert roles == {"alice/*": ["viewer"]}


def test_what_the_official_client_sends_works(api: TestClient[Litestar], callers: Callers) -> None:
    alice = callers.session_headers("alice")
    soon = datetime.now(UTC) + timedelta(minutes=30)
    for exp in (soon.isoformat(), int(soon.timestamp())):
        body = {"primary_namespace": "alice", "role_bindings": {"alice/*": ["viewer"]}, "exp": exp}
        answer = api.post("/api/v1/token/", json=body, headers=alice)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        expires = datetime.fromisoformat(data["expiration"])
        assert abs((expires - soon).total_seconds()) < 2
        permissions = api.get("/api/v1/permission/", headers=_bearer(data["token"])).json()
        assert permissions["data"]["primary_namespace"] == "alice"


def test_a_viewer_cannot_mint_an_admin_token(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    viewer = callers.headers({"team/*": ["viewer"]})
    before = _count(db_sessions)
    # 400 rather than 403: conda-store's client reads the reason only from a 400.
    answer = api.post(
        "/api/v1/token/", json={"role_bindings": {"team/*": ["admin"]}}, headers=viewer
    )
    assert answer.status_code == 400
    assert "cannot grant more than its creator holds" in answer.json()["message"]
    wider = api.post("/api/v1/token/", json={"role_bindings": {"*/*": ["viewer"]}}, headers=viewer)
    assert wider.status_code == 400
    assert _count(db_sessions) == before


def test_a_token_cannot_outlive_its_creator(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    short = callers.headers({"team/*": ["viewer"]}, lifetime=timedelta(minutes=30))
    before = _count(db_sessions)
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    answer = api.post("/api/v1/token/", json={"expiration": later}, headers=short)
    assert answer.status_code == 400
    assert "cannot outlive its creator" in answer.json()["message"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert api.post("/api/v1/token/", json={"exp": past}, headers=short).status_code == 400
    assert _count(db_sessions) == before


def test_anonymous_callers_cannot_mint_tokens(
    api: TestClient[Litestar], db_sessions: sessionmaker[Session]
) -> None:
    answer = api.post("/api/v1/token/", json={})
    assert answer.status_code == 400  # conda-store's client reads the reason only from a 400
    assert "anonymous callers cannot create tokens: log in first" in answer.json()["message"]
    assert _count(db_sessions) == 0


def test_bad_token_requests_are_400s(api: TestClient[Litestar], callers: Callers) -> None:
    alice = callers.session_headers("alice")
    for body in (
        {"role_bindings": {"alice": ["viewer"]}},
        {"role_bindings": {"alice/*": ["owner"]}},
        {"role_bindings": ["alice/*"]},
        {"expiration": "tomorrow"},
        {"exp": 10**20},
    ):
        answer = api.post("/api/v1/token/", json=body, headers=alice)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["status"] == "error"
    broken = api.post(
        "/api/v1/token/", content=b"{", headers={**alice, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400


def test_a_user_lists_their_own_tokens_without_the_tokens_themselves(
    api: TestClient[Litestar], callers: Callers
) -> None:
    alice = callers.session_headers("alice")
    bob = callers.session_headers("bob")
    minted = api.post("/api/v1/token/", json={"name": "CI"}, headers=alice).json()["data"]
    api.post("/api/v1/token/", json={"name": "bob's"}, headers=bob)

    listed = api.get("/api/v1/token/", headers=alice)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["count"] == 2  # alice's session and the CI token
    created = [item["created_on"] for item in body["data"]]
    assert created == sorted(created, reverse=True)  # newest first
    by_name = {item["name"]: item for item in body["data"]}
    ci, session = by_name["CI"], by_name["test"]
    assert ci["id"] == minted["id"]
    assert ci["username"] == "alice"
    assert ci["revoked_on"] is None and ci["last_used"] is None
    assert ci["current"] is False and session["current"] is True
    assert minted["token"] not in listed.text
    assert "bob's" not in listed.text


def test_only_admins_list_every_users_tokens(api: TestClient[Litestar], callers: Callers) -> None:
    alice = callers.session_headers("alice")
    refused = api.get("/api/v1/token/?all=true", headers=alice)
    assert refused.status_code == 403
    admin = callers.session_headers("root", admin=True)
    everyone = api.get("/api/v1/token/?all=true", headers=admin).json()
    assert {item["username"] for item in everyone["data"]} == {"alice", "root"}
    assert api.get("/api/v1/token/?all=true", headers=callers.admin).status_code == 200
    assert api.get("/api/v1/token/").status_code == 401


def test_a_revoked_token_gets_401_on_its_next_request(
    api: TestClient[Litestar], callers: Callers
) -> None:
    alice = callers.session_headers("alice")
    minted = api.post("/api/v1/token/", json={}, headers=alice).json()["data"]
    token = _bearer(minted["token"])
    assert api.get("/api/v1/permission/", headers=token).status_code == 200

    revoked = api.delete(f"/api/v1/token/{minted['id']}/", headers=alice)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["data"]["revoked_on"] is not None
    answer = api.get("/api/v1/permission/", headers=token)
    assert answer.status_code == 401
    assert "revoked" in answer.json()["message"]
    # Revoking again changes nothing.
    again = api.delete(f"/api/v1/token/{minted['id']}/", headers=alice)
    assert again.status_code == 200
    assert again.json()["data"]["revoked_on"] == revoked.json()["data"]["revoked_on"]


def test_users_revoke_only_their_own_tokens_and_admins_any(
    api: TestClient[Litestar], callers: Callers
) -> None:
    alice = callers.session_headers("alice")
    bob = callers.session_headers("bob")
    bobs = api.post("/api/v1/token/", json={}, headers=bob).json()["data"]
    refused = api.delete(f"/api/v1/token/{bobs['id']}/", headers=alice)
    assert refused.status_code == 404
    assert api.get("/api/v1/permission/", headers=_bearer(bobs["token"])).status_code == 200

    admin = callers.session_headers("root", admin=True)
    assert api.delete(f"/api/v1/token/{bobs['id']}/", headers=admin).status_code == 200
    assert api.get("/api/v1/permission/", headers=_bearer(bobs["token"])).status_code == 401
    assert api.delete(f"/api/v1/token/{bobs['id']}/").status_code == 401


def test_revoking_needs_a_token_id(api: TestClient[Litestar], callers: Callers) -> None:
    alice = callers.session_headers("alice")
    malformed = api.delete("/api/v1/token/not-an-id/", headers=alice)
    assert malformed.status_code == 400
    assert "not a token id" in malformed.json()["message"]
    unknown = api.delete("/api/v1/token/00000000-0000-0000-0000-000000000000/", headers=alice)
    assert unknown.status_code == 404


def test_a_token_without_an_account_sees_only_itself(
    api: TestClient[Litestar], callers: Callers
) -> None:
    token = callers.token({"team/*": ["viewer"]})
    callers.token({"other/*": ["viewer"]})
    listed = api.get("/api/v1/token/", headers=_bearer(token)).json()
    assert listed["count"] == 1
    assert listed["data"][0]["current"] is True

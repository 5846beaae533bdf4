"""What every API request goes through: credentials, body limits, the url_prefix and the
switches that turn route groups off."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from appliance.api.context import ApiContext
from appliance.auth.tokens import TokenClaims, mint
from tests.fixtures.api import Callers


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_credentials_are_read_from_bearer_basic_and_the_cookie(
    api: TestClient[Litestar], callers: Callers
) -> None:
    token = callers.token({"*/*": ["admin"]})
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": f"Basic {basic}"}):
        answer = api.get("/api/v1/permission/", headers=headers).json()["data"]
        assert answer["authenticated"] is True
        assert answer["entity_roles"] == {"*/*": ["admin"]}
    api.cookies.set("conda-store-auth", token)
    assert api.get("/api/v1/permission/").json()["data"]["authenticated"] is True


def test_no_credentials_is_an_anonymous_caller_with_no_rights_by_default(
    api: TestClient[Litestar],
) -> None:
    answer = api.get("/api/v1/permission/").json()["data"]
    assert answer["authenticated"] is False
    assert answer["entity_permissions"] == {}
    assert api.get("/api/v1/namespace/").json()["count"] == 0


@pytest.mark.parametrize(
    "kind", ["expired", "forged", "alg-none", "garbage", "unrecorded", "basic-empty"]
)
def test_bad_credentials_get_401_saying_why_and_change_nothing(
    api: TestClient[Litestar], callers: Callers, api_context: ApiContext, kind: str
) -> None:
    if kind == "expired":
        token = callers.token({"*/*": ["admin"]}, lifetime=timedelta(seconds=-10))
        headers, reason = {"Authorization": f"Bearer {token}"}, "expired"
    elif kind == "forged":
        token = callers.forged({"*/*": ["admin"]})
        headers, reason = {"Authorization": f"Bearer {token}"}, "not valid"
    elif kind == "alg-none":
        real = callers.token({"*/*": ["admin"]})
        payload = real.split(".")[1]
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
        headers, reason = {"Authorization": f"Bearer {token}"}, "not valid"
    elif kind == "garbage":
        headers, reason = {"Authorization": "Bearer not-a-token"}, "not valid"
    elif kind == "unrecorded":
        # Signed with the right secret but not on record (never issued here, or purged).
        claims = TokenClaims(
            role_bindings={"*/*": ("admin",)}, expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        token = mint(claims, secret=api_context.tokens.secret)
        headers, reason = {"Authorization": f"Bearer {token}"}, "not known"
    else:
        empty = base64.b64encode(b"user:").decode()
        headers, reason = {"Authorization": f"Basic {empty}"}, "token as the password"
    answer = api.post("/api/v1/namespace/sneaky/", headers=headers)
    assert answer.status_code == 401, answer.text
    assert reason in answer.json()["message"]
    assert api.get("/api/v1/namespace/", headers=callers.admin).json()["count"] == 0


def test_malformed_json_and_wrong_types_are_400s(
    api: TestClient[Litestar], callers: Callers
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    broken = api.put(
        "/api/v1/namespace/team/",
        content=b"{not json",
        headers={**callers.admin, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["status"] == "error"
    wrong = api.put("/api/v1/namespace/team/", json={"metadata": "a string"}, headers=callers.admin)
    assert wrong.status_code == 400
    assert (
        api.get("/api/v1/namespace/team/", headers=callers.admin).json()["data"]["metadata_"] == {}
    )


def test_an_oversized_body_is_refused_with_413(api: TestClient[Litestar], callers: Callers) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    huge = {"blob": "x" * (9 * 1024 * 1024)}
    answer = api.put("/api/v1/namespace/team/metadata", json=huge, headers=callers.admin)
    assert answer.status_code == 413
    assert answer.json()["status"] == "error"


def test_listing_parameters_are_checked(api: TestClient[Litestar], callers: Callers) -> None:
    for query, word in (
        ("page=0", "page"),
        ("size=0", "size"),
        ("order=sideways", "order"),
        ("sort_by=password", "sort_by"),
        ("page=abc", "page"),
    ):
        answer = api.get(f"/api/v1/namespace/?{query}", headers=callers.admin)
        assert answer.status_code == 400, query
        assert word in answer.text, query
    capped = api.get("/api/v1/namespace/?size=100000", headers=callers.admin).json()
    assert capped["size"] == 100


class TestUnderAUrlPrefix:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.CondaStoreServer.url_prefix = '/kiln'"]

    def test_the_api_and_its_reference_are_served_under_the_prefix(
        self, api: TestClient[Litestar]
    ) -> None:
        assert api.get("/kiln/api/v1/").json()["status"] == "ok"
        assert api.get("/api/v1/").status_code == 404
        assert "/kiln/api/v1/namespace/{namespace}" in api.get("/kiln/openapi.json").json()["paths"]


def test_the_conda_store_client_s_slash_after_the_query_is_tolerated(
    api: TestClient[Litestar], callers: Callers
) -> None:
    for name in ("a", "b", "c"):
        api.post(f"/api/v1/namespace/{name}/", headers=callers.admin)
    # conda-store's client ends every URL with '/', query strings included.
    page = api.get("/api/v1/namespace/?page=2&size=2/", headers=callers.admin)
    assert page.status_code == 200, page.text
    assert [n["name"] for n in page.json()["data"]] == ["c"]


class TestWithTheApiSwitchedOff:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.CondaStoreServer.enable_api = False"]

    def test_no_api_routes_are_served_but_the_probes_are(self, api: TestClient[Litestar]) -> None:
        assert api.get("/api/v1/").status_code == 404
        assert api.post("/login/", json={"username": "a", "password": "b"}).status_code == 404
        assert api.get("/healthz").status_code == 200
        assert "/api/v1/" not in api.get("/openapi.json").json()["paths"]

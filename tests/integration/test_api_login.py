"""Logging in and out with local accounts and DummyAuthentication, the session cookie, CSRF
protection, and the first admin account created with the setup token."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.models import ApiToken, User
from appliance.services.accounts import SESSION_TOKEN_NAME, SETUP_TOKEN, ensure_setup_token
from tests.fixtures.api import Callers

COOKIE = "conda-store-auth"
PASSWORD = "correct-horse"


def _tokens(db_sessions: sessionmaker[Session]) -> int:
    with db_sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ApiToken)) or 0)


def _user(db_sessions: sessionmaker[Session], name: str) -> User | None:
    with db_sessions() as session:
        return session.scalar(select(User).where(User.username == name))


def _log_in(api: TestClient[Litestar], username: str, password: str = PASSWORD) -> Any:
    return api.post("/login/", json={"username": username, "password": password})


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- local accounts (the default) -------------------------------------------------------


def test_a_local_account_logs_in_as_the_official_client_does(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("alice", password=PASSWORD)
    answer = _log_in(api, "alice")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "data": {"redirect_url": "/"}, "message": None}
    cookie = answer.headers["set-cookie"]
    for attribute in ("httponly", "samesite=strict", "path=/", "max-age=86400"):
        assert attribute in cookie.lower(), cookie
    assert "Secure" not in cookie  # plain http

    me = api.get("/api/v1/permission/").json()["data"]
    assert me["authenticated"] is True
    assert me["username"] == "alice"
    assert me["primary_namespace"] == "alice"
    assert me["entity_roles"]["alice/*"] == ["admin"]
    user = _user(db_sessions, "alice")
    assert user is not None and user.last_login is not None
    with db_sessions() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).one()
        assert row.name == SESSION_TOKEN_NAME and row.role_bindings == {}


def test_user_names_are_not_case_sensitive(api: TestClient[Litestar], callers: Callers) -> None:
    callers.user("Alice", password=PASSWORD)
    assert _log_in(api, "aLICE").status_code == 200
    assert api.get("/api/v1/permission/").json()["data"]["username"] == "Alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong-horse"), ("nobody", PASSWORD), ("oauth-only", PASSWORD), ("alice", "")],
)
def test_wrong_credentials_are_refused_and_change_nothing(
    api: TestClient[Litestar],
    callers: Callers,
    db_sessions: sessionmaker[Session],
    username: str,
    password: str,
) -> None:
    callers.user("alice", password=PASSWORD)
    with db_sessions.begin() as session:
        session.add(User(username="oauth-only", password_hash=None))
    answer = api.post("/login/", json={"username": username, "password": password})
    assert answer.status_code == 403
    assert answer.json()["message"] == "Invalid authentication credentials"
    assert "set-cookie" not in answer.headers
    assert _tokens(db_sessions) == 0
    user = _user(db_sessions, "alice")
    assert user is not None and user.last_login is None
    assert api.get("/api/v1/permission/").json()["data"]["authenticated"] is False


def test_a_disabled_account_cannot_log_in(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("alice", password=PASSWORD)
    with db_sessions.begin() as session:
        session.execute(update(User).values(disabled=True))
    answer = _log_in(api, "alice")
    assert answer.status_code == 403
    assert "disabled" in answer.json()["message"]
    assert _tokens(db_sessions) == 0


def test_bad_login_bodies_are_400s(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("alice", password=PASSWORD)
    json_headers = {"Content-Type": "application/json"}
    for content, says in (
        (b"{not json", "not valid JSON"),
        (b'["alice", "pw"]', "JSON object"),
        (b'{"username": "alice"}', "required"),
        (b'{"username": 5, "password": "x"}', "as text"),
        (json.dumps({"username": "a" * 300, "password": "x"}).encode(), "too long"),
    ):
        answer = api.post("/login/", content=content, headers=json_headers)
        assert answer.status_code == 400, content
        assert says in answer.json()["message"], answer.text
    plain = api.post("/login/", content=b"alice:pw", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert _tokens(db_sessions) == 0


def test_repeated_failures_are_slowed_down(
    api: TestClient[Litestar], callers: Callers, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.api.login import LoginThrottle

    monkeypatch.setattr(LoginThrottle, "limit", 3)
    callers.user("alice", password=PASSWORD)
    for _ in range(3):
        assert _log_in(api, "alice", "wrong-horse").status_code == 403
    refused = _log_in(api, "alice")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "too many failed logins" in refused.json()["message"]
    callers.user("bob", password=PASSWORD)
    assert _log_in(api, "bob").status_code == 200  # others are not affected


# --- forms and pages -------------------------------------------------------------------


def test_the_login_page_is_a_form_that_keeps_next(api: TestClient[Litestar]) -> None:
    page = api.get("/login/?next=/api/v1/namespace/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'method="post" action="/login/?next=/api/v1/namespace/">' in page.text
    assert re.search(r"<label>User name <input name=\"username\"", page.text)
    assert re.search(r"<label>Password <input name=\"password\" type=\"password\"", page.text)
    assert '<button type="submit">Log in</button>' in page.text


def test_the_login_page_looks_like_the_rest_of_the_ui(api: TestClient[Litestar]) -> None:
    page = api.get("/login/").text
    assert '<link rel="stylesheet" href="/ui/static/kiln.css">' in page
    assert '<header class="top">' in page and '<main id="main">' in page
    assert 'name="viewport"' in page
    assert api.get("/ui/static/kiln.css").status_code == 200
    assert 'action="/login/?next=/"' in page  # no next: the home page, which is the UI


def test_after_logging_in_the_user_lands_on_their_environments(
    api: TestClient[Litestar], callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    answer = api.post("/login/", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200
    assert [step.headers["location"] for step in answer.history] == ["/", "/ui/"]
    assert "<h1>Environments</h1>" in answer.text
    assert "Logged in as <strong>alice</strong>" in answer.text


class TestCustomLoginHtml:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.Authentication.login_html = '<p id=custom>Ask IT for an account</p>'"]

    def test_login_html_replaces_the_built_in_form(self, api: TestClient[Litestar]) -> None:
        page = api.get("/login/").text
        assert "<p id=custom>Ask IT for an account</p>" in page
        assert "<form" not in page


def test_a_form_login_redirects_to_next_on_this_server_only(
    api: TestClient[Litestar], callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    form = {"username": "alice", "password": PASSWORD}
    for next_url, location in (
        ("/api/v1/namespace/", "/api/v1/namespace/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ):
        answer = api.post("/login/", params={"next": next_url}, data=form, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == location, next_url
        assert COOKIE in answer.headers["set-cookie"]


def test_a_failed_form_login_shows_the_form_again(
    api: TestClient[Litestar], callers: Callers
) -> None:
    callers.user("alice", password=PASSWORD)
    answer = api.post("/login/", data={"username": "alice", "password": "nope-nope"})
    assert answer.status_code == 403
    assert '<p class="problem" role="alert">Invalid authentication credentials</p>' in answer.text
    assert "<form" in answer.text


# --- logging out -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_logging_out_revokes_the_session_and_clears_the_cookie(
    api: TestClient[Litestar], callers: Callers, method: str
) -> None:
    callers.user("alice", password=PASSWORD)
    assert _log_in(api, "alice").status_code == 200
    old = api.cookies[COOKIE]
    answer = api.request(method, "/logout/?next=/api/v1/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/api/v1/"
    cleared = answer.headers["set-cookie"]
    assert cleared.startswith(f"{COOKIE}=") and "Path=/" in cleared
    assert "Max-Age=0" in cleared or "expires=" in cleared.lower()
    assert COOKIE not in api.cookies

    api.cookies.set(COOKIE, old)
    stale = api.get("/api/v1/permission/")
    assert stale.status_code == 401
    assert "revoked" in stale.json()["message"]


def test_logging_out_without_a_session_just_redirects(api: TestClient[Litestar]) -> None:
    answer = api.post("/logout/?next=https://evil.example/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


# --- cookie credentials ------------------------------------------------------------------


@pytest.mark.parametrize("carrier", ["cookie", "bearer", "basic"])
@pytest.mark.parametrize("kind", ["expired", "forged", "alg-none", "garbage"])
def test_bad_credentials_get_401_saying_why_however_they_are_sent(
    api: TestClient[Litestar], callers: Callers, kind: str, carrier: str
) -> None:
    if kind == "expired":
        value, reason = callers.token({"*/*": ["admin"]}, lifetime=timedelta(seconds=-5)), "expired"
    elif kind == "forged":
        value, reason = callers.forged({"*/*": ["admin"]}), "not valid"
    elif kind == "alg-none":
        payload = callers.token({"*/*": ["admin"]}).split(".")[1]
        value, reason = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", "not valid"
    else:
        value, reason = "not-a-token", "not valid"
    headers: dict[str, str] = {}
    if carrier == "cookie":
        api.cookies.set(COOKIE, value)
    elif carrier == "bearer":
        headers["Authorization"] = f"Bearer {value}"
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(f"me:{value}".encode()).decode()
    answer = api.post("/api/v1/namespace/sneaky/", headers=headers)
    assert answer.status_code == 401
    assert reason in answer.json()["message"]
    api.cookies.clear()
    assert api.get("/api/v1/namespace/", headers=callers.admin).json()["count"] == 0


def test_cross_site_writes_with_the_cookie_are_refused_but_bearer_works(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("alice", password=PASSWORD)
    assert _log_in(api, "alice").status_code == 200
    for headers in (
        {"Origin": "https://evil.example"},
        {"Referer": "https://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
    ):
        refused = api.post("/api/v1/namespace/alice/", headers=headers)
        assert refused.status_code == 403, headers
        assert "cross-site request refused" in refused.json()["message"]
    with db_sessions() as session:
        assert session.execute(select(func.count()).select_from(User)).scalar_one() == 1

    same_site = api.post("/api/v1/namespace/alice/", headers={"Origin": "http://testserver.local"})
    assert same_site.status_code == 200, same_site.text
    token = api.cookies[COOKIE]
    api.cookies.clear()
    bearer = api.post(
        "/api/v1/namespace/alice-2/",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {token}"},
    )
    assert bearer.status_code == 403  # alice-2 is not alice's namespace...
    assert "cross-site" not in bearer.json()["message"]  # ...but the request was not refused
    assert (
        api.get(
            "/api/v1/namespace/alice/",
            headers={"Origin": "https://evil.example", "Authorization": f"Bearer {token}"},
        ).status_code
        == 200
    )


def test_a_login_form_posted_from_another_site_is_refused(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("mallory", password=PASSWORD)
    answer = api.post(
        "/login/",
        data={"username": "mallory", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert _tokens(db_sessions) == 0


# --- where the cookie lives -------------------------------------------------------------


class TestOverHttpsWithACookieDomain:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.Authentication.cookie_domain = 'testserver.local'"]

    @pytest.fixture
    def https(self, api: TestClient[Litestar]) -> Iterator[TestClient[Litestar]]:
        with TestClient(api.app, base_url="https://testserver.local") as client:
            yield client

    def test_the_cookie_is_secure_and_shared_with_the_domain(
        self, https: TestClient[Litestar], callers: Callers
    ) -> None:
        callers.user("alice", password=PASSWORD)
        answer = https.post("/login/", json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"]
        assert "Secure" in cookie and "Domain=testserver.local" in cookie
        out = https.post("/logout/", follow_redirects=False)
        assert "Domain=testserver.local" in out.headers["set-cookie"]


class TestUnderAUrlPrefix:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.CondaStoreServer.url_prefix = '/kiln'"]

    def test_login_lives_under_the_prefix_and_so_does_the_cookie(
        self, api: TestClient[Litestar], callers: Callers
    ) -> None:
        callers.user("alice", password=PASSWORD)
        assert api.post(
            "/login/", json={"username": "alice", "password": PASSWORD}
        ).status_code in (
            404,
            405,
        )
        answer = api.post("/kiln/login/", json={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200
        assert answer.json()["data"]["redirect_url"] == "/kiln/"
        assert "Path=/kiln" in answer.headers["set-cookie"]
        assert api.get("/kiln/api/v1/permission/").json()["data"]["username"] == "alice"
        page = api.get("/kiln/login/").text
        assert 'action="/kiln/login/?next=/kiln/"' in page
        assert 'href="/kiln/ui/static/kiln.css"' in page


# --- DummyAuthentication ------------------------------------------------------------------


class TestDummyAuthentication:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return [
            "c.CondaStoreServer.authentication_class = 'DummyAuthentication'",
            "c.DummyAuthentication.password = 'demo-password'",
        ]

    def test_any_valid_name_logs_in_with_the_shared_password(
        self, api: TestClient[Litestar], db_sessions: sessionmaker[Session]
    ) -> None:
        assert _log_in(api, "ada", "demo-password").status_code == 200
        user = _user(db_sessions, "ada")
        assert user is not None and user.password_hash is None and user.last_login is not None
        assert api.get("/api/v1/permission/").json()["data"]["primary_namespace"] == "ada"
        assert _log_in(api, "ada", "demo-password").status_code == 200  # same account again
        with db_sessions() as session:
            assert session.execute(select(func.count()).select_from(User)).scalar_one() == 1

    def test_a_wrong_password_or_name_is_refused(
        self, api: TestClient[Litestar], db_sessions: sessionmaker[Session]
    ) -> None:
        wrong = _log_in(api, "ada", "guess")
        assert wrong.status_code == 403
        assert wrong.json()["message"] == "Invalid authentication credentials"
        bad_name = _log_in(api, "../etc", "demo-password")
        assert bad_name.status_code == 400
        assert "user name" in bad_name.json()["message"]
        assert _user(db_sessions, "ada") is None and _tokens(db_sessions) == 0


# --- the first admin ---------------------------------------------------------------------


def _setup_token(api_context: ApiContext, db_sessions: sessionmaker[Session]) -> str:
    assert api_context.secrets_dir is not None
    with db_sessions.begin() as session:
        token = ensure_setup_token(session, api_context.secrets_dir)
    assert token is not None
    return token


def test_the_setup_token_creates_the_first_admin_once(
    api: TestClient[Litestar], api_context: ApiContext, db_sessions: sessionmaker[Session]
) -> None:
    token = _setup_token(api_context, db_sessions)
    body = {"setup_token": token, "username": "root", "password": PASSWORD}

    wrong = api.post("/api/v1/setup/", json={**body, "setup_token": "guess"})
    assert wrong.status_code == 403
    short = api.post("/api/v1/setup/", json={**body, "password": "short"})
    assert short.status_code == 400
    assert "too short" in short.json()["message"]
    assert _user(db_sessions, "root") is None

    created = api.post("/api/v1/setup/", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["data"]["is_admin"] is True
    assert api_context.secrets_dir is not None
    assert not (api_context.secrets_dir / SETUP_TOKEN).exists()

    again = api.post("/api/v1/setup/", json={**body, "username": "root2"})
    assert again.status_code == 409
    assert _user(db_sessions, "root2") is None

    assert _log_in(api, "root").status_code == 200
    assert api.post("/api/v1/namespace/anything/").status_code == 200  # an admin everywhere


def test_without_a_setup_token_nobody_can_become_admin(
    api: TestClient[Litestar], db_sessions: sessionmaker[Session]
) -> None:
    body = {"setup_token": "", "username": "root", "password": PASSWORD}
    assert api.post("/api/v1/setup/", json=body).status_code == 403
    assert api.post("/api/v1/setup/", json={"username": "root"}).status_code == 400
    assert _user(db_sessions, "root") is None

"""The OAuth 2 login, walked step by step as a browser would, against a small provider the tests
run on 127.0.0.1 (tests.fixtures.oauth)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.db.models import ApiToken, User
from tests.fixtures.oauth import FakeOAuthProvider

COOKIE = "conda-store-auth"
STATE_COOKIE = f"{COOKIE}-oauth-state"


def _generic(provider: FakeOAuthProvider) -> list[str]:
    section = "c.GenericOAuthAuthentication"
    return [
        "c.CondaStoreServer.authentication_class = 'GenericOAuthAuthentication'",
        f"{section}.authorize_url = '{provider.url}/authorize'",
        f"{section}.access_token_url = '{provider.url}/token'",
        f"{section}.user_data_url = '{provider.url}/user'",
        f"{section}.user_data_key = 'login'",
        f"{section}.client_id = '{provider.client_id}'",
        f"{section}.client_secret = '{provider.client_secret}'",
        f"{section}.access_scope = 'openid profile'",
    ]


def _button(page: str, provider: str) -> str:
    """Where the login page's button "Log in with <provider>" leads."""
    link = re.search(
        rf'<a class="button" href="([^"]+)">Log in with {re.escape(provider)}</a>', page
    )
    assert link is not None, page
    return unescape(link.group(1))


def _to_provider(
    api: TestClient[Litestar], next_url: str = "/api/v1/permission/", provider: str = ""
) -> str:
    """GET /login/: the page whose button leads to the provider's authorize URL (``provider``:
    the name on the button; the generic provider's host by default)."""
    answer = api.get("/login/", params={"next": next_url}, follow_redirects=False)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert STATE_COOKIE in api.cookies
    state_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in state_cookie and "samesite=lax" in state_cookie
    return _button(answer.text, provider or _host(answer.text))


def _host(page: str) -> str:
    found = re.search(r"Log in with (127\.0\.0\.1:\d+)</a>", page)
    assert found is not None, page
    return found.group(1)


def _at_provider(authorize_url: str) -> str:
    """The provider logs the user in and sends the browser back: the callback URL."""
    answer = httpx.get(authorize_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def _back_at_kiln(api: TestClient[Litestar], callback: str) -> httpx.Response:
    parts = urlsplit(callback)
    assert parts.netloc == "testserver.local"
    return api.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def _walk(api: TestClient[Litestar], next_url: str = "/api/v1/permission/") -> httpx.Response:
    return _back_at_kiln(api, _at_provider(_to_provider(api, next_url)))


class TestGenericOAuth:
    @pytest.fixture
    def kiln_config_lines(self, oauth_provider: FakeOAuthProvider) -> list[str]:
        return _generic(oauth_provider)

    def test_the_login_page_has_a_button_leading_to_the_provider(
        self, api: TestClient[Litestar], oauth_provider: FakeOAuthProvider
    ) -> None:
        page = api.get("/login/?next=/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        host = urlsplit(oauth_provider.url).netloc
        assert f"Log in with {host}" in page.text
        assert '<link rel="stylesheet" href="/ui/static/kiln.css">' in page.text
        assert "<form" not in page.text  # no password to type here
        assert api.get("/ui/static/kiln.css").status_code == 200

    def test_after_logging_in_the_user_lands_on_their_environments(
        self, api: TestClient[Litestar]
    ) -> None:
        page = api.get("/login/")
        landed = _back_at_kiln(api, _at_provider(_button(page.text, _host(page.text))))
        assert landed.status_code == 200, landed.text
        refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', landed.text)
        assert refresh is not None and refresh.group(1) == "/"
        home = api.get(refresh.group(1))
        assert str(home.url).endswith("/ui/")
        assert "Logged in as <strong>octocat</strong>" in home.text

    def test_the_authorize_link_carries_what_the_provider_needs(
        self, api: TestClient[Litestar], oauth_provider: FakeOAuthProvider
    ) -> None:
        location = _to_provider(api)
        assert location.startswith(f"{oauth_provider.url}/authorize?")
        query = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        assert query["client_id"] == oauth_provider.client_id
        assert query["redirect_uri"] == "http://testserver.local/oauth_callback/"
        assert query["response_type"] == "code"
        assert query["scope"] == "openid profile"
        assert len(query["state"]) >= 20

    def test_a_user_logs_in_through_the_provider(
        self,
        api: TestClient[Litestar],
        oauth_provider: FakeOAuthProvider,
        db_sessions: sessionmaker[Session],
    ) -> None:
        landed = _walk(api)
        assert landed.status_code == 200, landed.text
        refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', landed.text)
        assert refresh is not None and refresh.group(1) == "/api/v1/permission/"
        assert "samesite=strict" in landed.headers.get_list("set-cookie")[-1].lower()
        assert STATE_COOKIE not in api.cookies  # used up

        me = api.get(refresh.group(1)).json()["data"]
        assert me["authenticated"] is True
        assert me["username"] == "octocat"
        assert me["entity_roles"]["octocat/*"] == ["admin"]
        with db_sessions() as session:
            user = session.scalars(select(User).where(User.username == "octocat")).one()
            assert user.password_hash is None and user.last_login is not None
        assert ("POST", "/token") in oauth_provider.requests
        assert ("GET", "/user") in oauth_provider.requests

        # Logging in again finds the same account; logging out ends the session.
        api.cookies.clear()
        assert _walk(api).status_code == 200
        old = api.cookies[COOKIE]
        assert api.post("/logout/", follow_redirects=False).status_code == 303
        api.cookies.set(COOKIE, old)
        assert api.get("/api/v1/permission/").status_code == 401
        with db_sessions() as session:
            assert session.execute(select(func.count()).select_from(User)).scalar_one() == 1

    def test_a_callback_whose_state_does_not_match_is_refused(
        self, api: TestClient[Litestar], db_sessions: sessionmaker[Session]
    ) -> None:
        callback = _at_provider(_to_provider(api))
        forged = re.sub(r"state=[^&]+", "state=forged-state", callback)
        answer = _back_at_kiln(api, forged)
        assert answer.status_code == 400
        assert "state does not match" in answer.json()["message"]
        assert COOKIE not in api.cookies
        with db_sessions() as session:
            assert session.execute(select(func.count()).select_from(User)).scalar_one() == 0
            assert session.execute(select(func.count()).select_from(ApiToken)).scalar_one() == 0

    def test_a_callback_without_the_state_cookie_is_refused(
        self, api: TestClient[Litestar]
    ) -> None:
        callback = _at_provider(_to_provider(api))
        api.cookies.delete(STATE_COOKIE)
        answer = _back_at_kiln(api, callback)
        assert answer.status_code == 400
        assert "state is missing" in answer.json()["message"]
        api.cookies.set(STATE_COOKIE, "abc.def")
        tampered = api.get("/oauth_callback/?code=x&state=y")
        assert tampered.status_code == 400
        assert "not issued by this server" in tampered.json()["message"]

    def test_a_used_code_or_a_refusal_at_the_provider_is_a_403(
        self, api: TestClient[Litestar]
    ) -> None:
        callback = _at_provider(_to_provider(api))
        assert _back_at_kiln(api, callback).status_code == 200
        api.cookies.clear()
        # The same code again (with a fresh state): the provider refuses it.
        fresh = _at_provider(_to_provider(api))
        state = parse_qs(urlsplit(fresh).query)["state"][0]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        replay = api.get(f"/oauth_callback/?code={code}&state={state}", follow_redirects=False)
        assert replay.status_code == 403
        assert "unknown or used code" in replay.json()["message"]

        denied = _to_provider(api)
        state = parse_qs(urlsplit(denied).query)["state"][0]
        answer = api.get(f"/oauth_callback/?error=access_denied&state={state}")
        assert answer.status_code == 403
        assert "access_denied" in answer.json()["message"]

    def test_password_logins_are_not_offered(self, api: TestClient[Litestar]) -> None:
        answer = api.post("/login/", json={"username": "octocat", "password": "whatever"})
        assert answer.status_code == 400
        assert "logs in through OAuth" in answer.json()["message"]

    def test_next_must_stay_on_this_server(self, api: TestClient[Litestar]) -> None:
        landed = _walk(api, next_url="https://evil.example/")
        assert 'content="0;url=/"' in landed.text


class TestUnreachableProvider:
    @pytest.fixture
    def kiln_config_lines(self, oauth_provider: FakeOAuthProvider) -> list[str]:
        lines = _generic(oauth_provider)
        lines.append("c.GenericOAuthAuthentication.access_token_url = 'http://127.0.0.1:9/token'")
        return lines

    def test_an_unreachable_provider_is_a_502_saying_so(self, api: TestClient[Litestar]) -> None:
        answer = _walk(api)
        assert answer.status_code == 502
        assert "cannot reach the OAuth provider" in answer.json()["message"]
        assert COOKIE not in api.cookies


class TestWrongUserDataKey:
    @pytest.fixture
    def kiln_config_lines(self, oauth_provider: FakeOAuthProvider) -> list[str]:
        return [*_generic(oauth_provider), "c.GenericOAuthAuthentication.user_data_key = 'email'"]

    def test_user_data_without_the_key_is_a_502_naming_it(self, api: TestClient[Litestar]) -> None:
        answer = _walk(api)
        assert answer.status_code == 502
        assert "'email'" in answer.json()["message"]


class TestGithubOAuth:
    @pytest.fixture
    def kiln_config_lines(self, oauth_provider: FakeOAuthProvider) -> list[str]:
        return [
            "c.CondaStoreServer.authentication_class = 'GithubOAuthAuthentication'",
            f"c.GithubOAuthAuthentication.github_url = '{oauth_provider.url}'",
            f"c.GithubOAuthAuthentication.github_api = '{oauth_provider.url}'",
            f"c.GithubOAuthAuthentication.client_id = '{oauth_provider.client_id}'",
            f"c.GithubOAuthAuthentication.client_secret = '{oauth_provider.client_secret}'",
        ]

    def test_a_github_user_logs_in_through_githubs_paths(
        self, api: TestClient[Litestar], oauth_provider: FakeOAuthProvider
    ) -> None:
        oauth_provider.username = "mona"
        location = _to_provider(api, provider="GitHub")
        assert location.startswith(f"{oauth_provider.url}/login/oauth/authorize?")
        assert "scope=user%3Aemail" in location
        landed = _back_at_kiln(api, _at_provider(location))
        assert landed.status_code == 200, landed.text
        assert ("POST", "/login/oauth/access_token") in oauth_provider.requests
        assert api.get("/api/v1/permission/").json()["data"]["username"] == "mona"


class TestLoginHtmlWithOAuth:
    @pytest.fixture
    def kiln_config_lines(self, oauth_provider: FakeOAuthProvider) -> list[str]:
        return [
            *_generic(oauth_provider),
            "c.Authentication.login_html = '<a id=sso href=\"{authorization_url}\">SSO</a>'",
        ]

    def test_the_page_links_to_the_provider(
        self, api: TestClient[Litestar], oauth_provider: FakeOAuthProvider
    ) -> None:
        page = api.get("/login/")
        assert page.status_code == 200
        link = re.search(r'<a id=sso href="([^"]+)">', page.text)
        assert link is not None and link.group(1).startswith(f"{oauth_provider.url}/authorize?")
        assert STATE_COOKIE in api.cookies


def test_the_callback_is_not_served_without_oauth(api: TestClient[Litestar]) -> None:
    answer = api.get("/oauth_callback/?code=x&state=y")
    assert answer.status_code == 404

"""The OAuth login's state cookie and authorize URL (appliance.auth.oauth)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.auth.oauth import InvalidState, OAuthClient, check_state, open_state, seal_state

SECRET = "session-secret-" + "x" * 20


def test_a_sealed_state_opens_with_the_same_secret_until_it_expires() -> None:
    sealed = seal_state(SECRET, "abc", "/api/v1/", now=1000.0, lifetime=60)
    assert open_state(SECRET, sealed, now=1059.0) == ("abc", "/api/v1/")
    with pytest.raises(InvalidState, match="expired"):
        open_state(SECRET, sealed, now=1061.0)
    with pytest.raises(InvalidState, match="not issued by this server"):
        open_state("another-secret", sealed, now=1000.0)
    payload, _, signature = sealed.partition(".")
    with pytest.raises(InvalidState, match="not issued by this server"):
        open_state(SECRET, f"{payload}x.{signature}", now=1000.0)
    with pytest.raises(InvalidState, match="missing"):
        open_state(SECRET, None)


def test_the_returned_state_must_match() -> None:
    check_state("abc", "abc")
    for returned in ("abd", "", None):
        with pytest.raises(InvalidState, match="does not match"):
            check_state("abc", returned)


def test_the_authorize_url_keeps_the_providers_own_query() -> None:
    client = OAuthClient(
        authorize_url="https://sso.example/auth?tenant=lab",
        access_token_url="https://sso.example/token",
        user_data_url="https://sso.example/me",
        user_data_key="preferred_username",
        client_id="kiln",
        client_secret="s",
        scope="openid profile",
    )
    url = client.authorization_url(redirect_uri="https://kiln.example/oauth_callback/", state="st")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "sso.example", "/auth")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {
        "tenant": "lab",
        "client_id": "kiln",
        "redirect_uri": "https://kiln.example/oauth_callback/",
        "response_type": "code",
        "state": "st",
        "scope": "openid profile",
    }

"""The web UI's token pages on the real app and database: a logged-in user creates a scoped
token that is shown once and works against the API with only what it was given, revokes it, and
gets a message naming the problem (and no token) for bad input."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import Callers
from tests.fixtures.ui import csrf_of, submit_form, text_of

Client = TestClient[Litestar]


def _token_count(api: Client, headers: Mapping[str, str]) -> int:
    answer = api.get("/api/v1/token/", headers=dict(headers))
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


def _create(api: Client, headers: Mapping[str, str], **fields: str) -> tuple[str, str]:
    """Create a token through the form; ``(token, page html)``."""
    answer = submit_form(api, "/ui/tokens/new/", "/ui/tokens/", fields, headers)
    assert answer.status_code == 200, text_of(answer.text)
    found = re.search(r'<textarea id="token"[^>]*>([^<]+)</textarea>', answer.text)
    assert found is not None, answer.text
    return unescape(found.group(1)).strip(), answer.text


def test_a_user_creates_a_narrower_token_that_is_shown_once_and_works(
    api: Client, callers: Callers
) -> None:
    dora = callers.session_headers("dora")
    listing = api.get("/ui/tokens/", headers=dora)
    assert 'href="/ui/tokens/new/"' in listing.text
    form = api.get("/ui/tokens/new/", headers=dora)
    for label in ("Name", "Role bindings", "Primary namespace", "Expires (UTC)"):
        assert f">{label}" in form.text, label
    assert "dora/*: admin" in text_of(form.text)  # the caller's own bindings, as a guide

    expires = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    answer = submit_form(
        api, "/ui/tokens/new/", "/ui/tokens/",
        {"name": "ci", "bindings": "dora/*: viewer", "expiration": expires}, dora,
    )  # fmt: skip
    assert answer.status_code == 200, text_of(answer.text)
    assert answer.headers["cache-control"] == "no-store"
    text = text_of(answer.text)
    assert "it will not be shown again" in text
    assert 'data-copy="token"' in answer.text and "/static/forms.js" in answer.text
    token = re.search(r'<textarea id="token"[^>]*>([^<]+)</textarea>', answer.text)
    assert token is not None
    secret = unescape(token.group(1)).strip()

    # Listed (its record), never shown again.
    listed = api.get("/ui/tokens/", headers=dora)
    assert secret not in listed.text
    assert "ci active Revoke dora/*: viewer" in text_of(listed.text)

    # It works, with only the bindings it was given, until the expiry asked for.
    me = api.get("/api/v1/permission/", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["data"]["entity_roles"] == {"dora/*": ["viewer"]}
    assert me["data"]["expiration"].startswith(expires)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.post("/api/v1/namespace/dora/", headers=bearer).status_code == 403
    assert api.post("/api/v1/namespace/dora/", headers=dora).status_code == 200


def test_an_empty_form_gives_a_token_with_the_callers_own_bindings(
    api: Client, callers: Callers
) -> None:
    dora = callers.session_headers("dora")
    secret, _ = _create(api, dora)
    me = api.get("/api/v1/permission/", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["data"]["entity_roles"]["dora/*"] == ["admin"]
    assert me["data"]["primary_namespace"] == "dora"


def test_revoking_a_token_makes_it_401(api: Client, callers: Callers) -> None:
    dora = callers.session_headers("dora")
    secret, _ = _create(api, dora, name="laptop", bindings="dora/*: viewer")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/permission/", headers=bearer).status_code == 200
    listing = api.get("/ui/tokens/", headers=dora).text
    actions = re.findall(r'action="(/ui/tokens/[0-9a-f-]+/revoke/)"', listing)
    assert len(actions) == 1  # the new token; the session itself is ended by logging out
    assert "log out to end it" in text_of(listing)

    answer = submit_form(api, "/ui/tokens/", actions[0], {}, dora)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/tokens/?done=revoked"
    assert "The token was revoked" in text_of(
        api.get(answer.headers["location"], headers=dora).text
    )
    refused = api.get("/api/v1/permission/", headers=bearer)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]
    assert "revoke/" not in api.get("/ui/tokens/", headers=dora).text


def test_nobody_revokes_another_users_token(api: Client, callers: Callers) -> None:
    dora = callers.session_headers("dora")
    secret, _ = _create(api, dora, bindings="dora/*: viewer")
    action = re.findall(
        r'action="(/ui/tokens/[0-9a-f-]+/revoke/)"', api.get("/ui/tokens/", headers=dora).text
    )[0]
    eve = callers.session_headers("eve")
    answer = submit_form(api, "/ui/tokens/new/", action, {}, eve)
    assert answer.status_code == 404
    assert "among the tokens you can manage" in text_of(answer.text)
    assert api.get("/api/v1/permission/", headers={"Authorization": f"Bearer {secret}"}).json()[
        "data"
    ]["authenticated"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"bindings": "*/*: admin"}, "a token cannot grant more than its creator holds"),
        ({"bindings": "dora/*: boss"}, "unknown role boss; allowed: admin, developer, editor"),
        ({"bindings": "dora/*: viewer\njust words"}, "line 2 ('just words'): expected"),
        ({"bindings": "dora: viewer"}, "expected '<namespace>/<environment>'"),
        ({"expiration": "next tuesday"}, "expiration 'next tuesday' is not a date and time"),
        ({"expiration": "2001-01-01"}, "is in the past"),
        ({"expiration": "2999-01-01T00:00"}, "a token cannot outlive its creator"),
        ({"primary_namespace": "no spaces"}, "the namespace name 'no spaces' contains ' '"),
    ],
)
def test_bad_input_is_named_next_to_its_field_and_mints_nothing(
    api: Client, callers: Callers, fields: dict[str, str], says: str
) -> None:
    dora = callers.session_headers("dora")
    answer = submit_form(api, "/ui/tokens/new/", "/ui/tokens/", fields, dora)
    assert answer.status_code == 400
    assert says in text_of(answer.text)
    field = next(iter(fields))
    assert f'aria-describedby="{field}-problem"' in answer.text
    assert 'id="token"' not in answer.text
    value = next(iter(fields.values()))
    assert unescape(value.split("\n")[-1]) in unescape(answer.text)  # what was entered is kept
    assert _token_count(api, dora) == 1  # the session only


def test_a_form_without_the_callers_token_mints_nothing(api: Client, callers: Callers) -> None:
    dora = callers.session_headers("dora")
    eve = callers.session_headers("eve")
    foreign = csrf_of(api.get("/ui/tokens/new/", headers=eve).text)
    for data in ({"name": "x"}, {"name": "x", "csrf": foreign}):
        answer = api.post("/ui/tokens/", data=data, headers=dora)
        assert answer.status_code == 403
    assert _token_count(api, dora) == 1


def test_anonymous_callers_are_sent_to_log_in(api: Client) -> None:
    page = api.get("/ui/tokens/new/", follow_redirects=False)
    assert page.headers["location"] == "/login/?next=%2Fui%2Ftokens%2Fnew%2F"
    answer = api.post("/ui/tokens/", data={"name": "x"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login/?next=")

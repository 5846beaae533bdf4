"""Local accounts through the admin API (``/api/v1/admin/users/``), on the real app and
database: listing, creating, a new password (the old one stops working, sessions end),
disabling (sessions end) and enabling, granting and taking admin, the last enabled admin kept,
who may, and every kind of bad input (each changes nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.auth.passwords import verify_password
from appliance.db.models import User
from appliance.services.accounts import SETUP_TOKEN, ensure_setup_token
from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tui.client import KilnApiError, KilnClient
from tui.models import Account

Client = TestClient[Litestar]

USERS = "/api/v1/admin/users/"
COOKIE = "conda-store-auth"
PASSWORD = "correct-horse"


def data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    problems = [f"{e['key']}: {e['message']}" for e in body.get("errors") or []]
    return "; ".join([body["message"], *problems])


def log_in(api: Client, username: str, password: str) -> dict[str, str] | None:
    """Headers carrying a new login session of ``username``, or None when the login fails.
    (The client's cookie jar is left empty: a cookie there would win over other headers.)"""
    answer = api.post("/login/", json={"username": username, "password": password})
    api.cookies.clear()
    if answer.status_code != 200:
        return None
    cookie = answer.cookies[COOKIE]
    return {"Cookie": f"{COOKIE}={cookie}"}


def whoami(api: Client, headers: dict[str, str]) -> Any:
    """The caller's permissions, or the refusal's status code."""
    answer = api.get("/api/v1/permission/", headers=headers)
    return answer.json()["data"] if answer.status_code == 200 else answer.status_code


def accounts(db_sessions: sessionmaker[Session]) -> dict[str, User]:
    with db_sessions() as session:
        return {user.username: user for user in session.scalars(select(User))}


def by_name(listing: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {account["username"]: account for account in listing}


# --- who may --------------------------------------------------------------------------------


def test_only_operators_manage_accounts(api: Client, callers: Callers) -> None:
    plain = callers.session_headers("alice")
    everything_but_admin = callers.headers({"*/*": ["editor"]})
    body = {"username": "ada", "password": PASSWORD, "is_admin": True}
    for method, path, payload in (
        ("GET", USERS, None),
        ("POST", USERS, body),
        ("PATCH", f"{USERS}alice/", {"is_admin": True}),
    ):
        assert api.request(method, path, json=payload).status_code == 401
        for headers in (plain, everything_but_admin):
            refused = api.request(method, path, json=payload, headers=headers)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "admin role on every namespace" in refused.json()["message"]
    assert by_name(data(api.get(USERS, headers=callers.admin)))["alice"]["is_admin"] is False


# --- listing and creating ----------------------------------------------------------------


def test_accounts_are_listed_by_name_with_what_the_console_shows(
    api: Client, callers: Callers
) -> None:
    callers.user("zoe")
    callers.user("ada", admin=True)
    assert log_in(api, "ada", PASSWORD) is not None
    listing = data(api.get(USERS, headers=callers.admin))
    assert [account["username"] for account in listing] == ["ada", "zoe"]
    ada, zoe = listing
    assert set(ada) == {
        "id", "username", "is_admin", "disabled", "has_password", "created_on", "last_login"
    }  # fmt: skip
    assert ada["is_admin"] is True and zoe["is_admin"] is False
    assert ada["has_password"] is True and ada["disabled"] is False
    assert ada["last_login"] is not None and zoe["last_login"] is None
    assert ada["created_on"]


def test_an_account_is_created_and_logs_in(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    body = {"username": "ada", "password": "a long password", "is_admin": False}
    response = api.post(USERS, json=body, headers=callers.admin)
    account = data(response, 201)
    assert response.json()["message"] == "account ada created"
    assert account["username"] == "ada" and account["is_admin"] is False
    assert account["has_password"] is True and account["disabled"] is False
    assert account["last_login"] is None
    session = log_in(api, "ada", "a long password")
    assert session is not None
    me = whoami(api, session)
    assert me["username"] == "ada" and "*/*" not in me["entity_roles"]
    stored = accounts(db_sessions)["ada"]
    assert stored.password_hash and "a long password" not in stored.password_hash


def test_an_admin_account_is_created_and_the_setup_token_goes(
    api: Client, callers: Callers, api_context: ApiContext, db_sessions: sessionmaker[Session]
) -> None:
    secrets = api_context.secrets_dir
    assert secrets is not None
    with db_sessions.begin() as session:
        assert ensure_setup_token(session, secrets) is not None
    assert (secrets / SETUP_TOKEN).exists()
    body = {"username": "root", "password": PASSWORD, "is_admin": True}
    response = api.post(USERS, json=body, headers=callers.admin)
    assert data(response, 201)["is_admin"] is True
    assert response.json()["message"] == "admin account root created"
    assert not (secrets / SETUP_TOKEN).exists()
    root = log_in(api, "root", PASSWORD)
    assert root is not None
    assert whoami(api, root)["entity_roles"]["*/*"] == ["admin"]


def test_an_account_without_a_password_logs_in_through_oauth_only(
    api: Client, callers: Callers
) -> None:
    body = {"username": "octocat", "password": None, "is_admin": False}
    account = data(api.post(USERS, json=body, headers=callers.admin), 201)
    assert account["has_password"] is False
    assert log_in(api, "octocat", "") is None


def test_bad_new_accounts_are_refused_and_change_nothing(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("ada")
    for body, status, says in (
        ({"username": "ada", "password": PASSWORD}, 409, "an account named ada exists already"),
        ({"username": "ADA", "password": PASSWORD}, 409, "an account named ADA exists already"),
        ({"username": "bad/name", "password": PASSWORD}, 400, "the user name 'bad/name' contains"),
        ({"username": "", "password": PASSWORD}, 400, "the user name cannot be empty"),
        ({"username": "bob", "password": "short"}, 400, "too short: use at least 8 characters"),
        ({"username": "bob", "password": ""}, 400, "too short"),
        ({"username": "bob"}, 400, "password"),
        ({"username": "bob", "password": PASSWORD, "role": "admin"}, 400, "role"),
        ({"username": "bob", "password": PASSWORD, "is_admin": "yes"}, 400, "is_admin"),
    ):
        message = refusal(api.post(USERS, json=body, headers=callers.admin), status)
        assert says in message, (body, message)
    assert sorted(accounts(db_sessions)) == ["ada"]


# --- changing an account --------------------------------------------------------------------


def test_a_new_password_replaces_the_old_one_and_ends_sessions(
    api: Client, callers: Callers
) -> None:
    callers.user("ada")
    before = log_in(api, "ada", PASSWORD)
    assert before is not None and whoami(api, before)["username"] == "ada"
    response = api.patch(f"{USERS}ada/", json={"password": "new password!"}, headers=callers.admin)
    assert data(response)["username"] == "ada"
    assert response.json()["message"] == "ada: password changed, login sessions ended"
    assert whoami(api, before) == 401
    assert log_in(api, "ada", PASSWORD) is None
    after = log_in(api, "ada", "new password!")
    assert after is not None and whoami(api, after)["username"] == "ada"


def test_a_disabled_account_is_locked_out_until_enabled(api: Client, callers: Callers) -> None:
    user_id = callers.user("ada")
    session = log_in(api, "ada", PASSWORD)
    assert session is not None
    minted = callers.headers({"ada/*": ["viewer"]}, user_id=user_id, subject="ada")
    assert whoami(api, session)["username"] == "ada"  # resolved (and cached) before
    assert whoami(api, minted)["authenticated"] is True

    response = api.patch(f"{USERS}ada/", json={"disabled": True}, headers=callers.admin)
    assert data(response)["disabled"] is True
    assert response.json()["message"] == "ada: disabled, login sessions ended"
    assert whoami(api, session) == 401
    assert whoami(api, minted) == 401
    refused = api.post("/login/", json={"username": "ada", "password": PASSWORD})
    api.cookies.clear()
    assert refused.status_code == 403 and "disabled" in refused.json()["message"]

    response = api.patch(f"{USERS}ADA/", json={"disabled": False}, headers=callers.admin)
    assert data(response)["disabled"] is False
    assert response.json()["message"] == "ada: enabled"
    assert whoami(api, session) == 401  # the session ended for good
    assert whoami(api, minted)["authenticated"] is True  # its tokens work again
    again = log_in(api, "ada", PASSWORD)
    assert again is not None and whoami(api, again)["username"] == "ada"


def test_admin_is_granted_and_taken_away_from_the_next_request_on(
    api: Client, callers: Callers
) -> None:
    callers.user("root", admin=True)
    callers.user("ada")
    session = log_in(api, "ada", PASSWORD)
    assert session is not None
    assert api.get(USERS, headers=session).status_code == 403

    response = api.patch(f"{USERS}ada/", json={"is_admin": True}, headers=callers.admin)
    assert data(response)["is_admin"] is True
    assert response.json()["message"] == "ada: made an admin"
    assert [a["username"] for a in data(api.get(USERS, headers=session))] == ["ada", "root"]
    assert whoami(api, session)["entity_roles"]["*/*"] == ["admin"]

    response = api.patch(f"{USERS}ada/", json={"is_admin": False}, headers=callers.admin)
    assert data(response)["is_admin"] is False
    assert response.json()["message"] == "ada: no longer an admin"
    assert api.get(USERS, headers=session).status_code == 403
    assert "*/*" not in whoami(api, session)["entity_roles"]


def test_several_changes_at_once_and_a_change_to_nothing(api: Client, callers: Callers) -> None:
    callers.user("root", admin=True)
    callers.user("ada", admin=True)
    body = {"is_admin": False, "disabled": True, "password": "another password"}
    response = api.patch(f"{USERS}ada/", json=body, headers=callers.admin)
    account = data(response)
    assert account["is_admin"] is False and account["disabled"] is True
    assert response.json()["message"] == (
        "ada: password changed, login sessions ended; no longer an admin; "
        "disabled, login sessions ended"
    )
    same = api.patch(f"{USERS}ada/", json={"disabled": True}, headers=callers.admin)
    assert data(same)["disabled"] is True
    assert same.json()["message"] == "ada: nothing changed (it was so already)"


def test_the_last_enabled_admin_is_kept(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("root", admin=True)
    callers.user("old", admin=True)
    assert data(api.patch(f"{USERS}old/", json={"disabled": True}, headers=callers.admin))
    for body, action in (
        ({"disabled": True}, "disable"),
        ({"is_admin": False}, "take admin from"),
        ({"is_admin": False, "disabled": True}, "take admin from"),
        ({"password": "a new password", "disabled": True}, "disable"),
    ):
        message = refusal(api.patch(f"{USERS}root/", json=body, headers=callers.admin), 409)
        assert message == (
            f"cannot {action} root: it is the last enabled admin account, and without one "
            "nobody could manage accounts from the web; make another account an admin first"
        ), body
    root = accounts(db_sessions)["root"]
    assert root.is_admin and not root.disabled
    assert verify_password(PASSWORD, root.password_hash or "")  # the whole change was refused
    # A disabled admin may lose admin; with another admin enabled, root may be disabled.
    assert data(api.patch(f"{USERS}old/", json={"is_admin": False}, headers=callers.admin))
    assert data(api.patch(f"{USERS}old/", json={"is_admin": True, "disabled": False},
                          headers=callers.admin))  # fmt: skip
    assert data(api.patch(f"{USERS}root/", json={"disabled": True}, headers=callers.admin))


def test_bad_changes_are_refused_and_change_nothing(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    callers.user("ada")
    for path, body, status, says in (
        ("nobody/", {"disabled": True}, 404, "no account named nobody"),
        ("ada/", {}, 400, "nothing to change: give password, disabled or is_admin"),
        ("ada/", {"password": "short"}, 400, "too short: use at least 8 characters"),
        ("ada/", {"password": ""}, 400, "too short"),
        ("ada/", {"disabled": "yes"}, 400, "disabled"),
        ("ada/", {"username": "eve"}, 400, "username"),
    ):
        message = refusal(api.patch(f"{USERS}{path}", json=body, headers=callers.admin), status)
        assert says in message, (path, body, message)
    ada = accounts(db_sessions)["ada"]
    assert not ada.disabled and not ada.is_admin
    assert verify_password(PASSWORD, ada.password_hash or "")


# --- the console's client -------------------------------------------------------------------


def test_the_console_manages_accounts_on_a_live_kiln_web(
    live_kiln: LiveKiln, callers: Callers
) -> None:
    callers.user("root", admin=True)
    token = callers.token({"*/*": ["admin"]})

    async def scenario() -> tuple[list[Account], Account, Account, Account, list[str]]:
        client = KilnClient(live_kiln.url, token)
        try:
            created = await client.create_account("ada", "a long password", is_admin=False)
            admin = await client.update_account("ada", is_admin=True)
            disabled = await client.update_account("ada", disabled=True, password="another one!")
            refused = []
            for change in (
                client.update_account("root", disabled=True),  # ada is disabled
                client.update_account("ada", disabled=False),
                client.update_account("root", disabled=True),
                client.update_account("ada", is_admin=False),
            ):
                try:
                    await change
                except KilnApiError as error:
                    refused.append(f"{error.status} {error.message}")
            return await client.accounts(), created, admin, disabled, refused
        finally:
            await client.aclose()

    listed, created, admin, disabled, refused = asyncio.run(scenario())
    assert created.username == "ada" and created.has_password and not created.is_admin
    assert created.id > 0 and created.created_on is not None and created.last_login is None
    assert admin.is_admin and not admin.disabled
    assert disabled.disabled and disabled.is_admin
    why = (
        "it is the last enabled admin account, and without one nobody could manage accounts "
        "from the web; make another account an admin first"
    )
    assert refused == [f"409 cannot disable root: {why}", f"409 cannot take admin from ada: {why}"]
    assert [(a.username, a.is_admin, a.disabled) for a in listed] == [
        ("ada", True, False),
        ("root", True, True),
    ]

"""The access screen against a live Kiln: create a token (shown once), see it listed, revoke it;
give another namespace's users a role and take it away; create a user, disable and enable
them, make them an admin, set a new password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from textual.pilot import Pilot
from textual.widgets import Input

from tests.fixtures.tui import SeededKiln, drive, rows_of, said, wait_for
from tui.app import KilnConsole
from tui.widgets.dialogs import Confirm, Form, Notice


def test_an_operator_creates_a_token_and_revokes_it(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="access")
    issued: list[str] = []

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("t")
        await wait_for(pilot, lambda: len(rows_of(app, "#tokens-table")) == 1, "the tokens")
        await pilot.press("n")
        assert isinstance(app.screen, Form)
        await pilot.press(*"CI", "enter")  # name; then the bindings, replaced as typed
        await pilot.press(*"team/*=viewer", "enter", *"team", "enter", *"30m", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, Notice), "the new token")
        issued.append(app.screen.query_one("#notice-value", Input).value)
        await pilot.press("escape")
        await wait_for(pilot, lambda: rows_of(app, "#tokens-table")[0][0] == "CI", "the listing")
        assert rows_of(app, "#tokens-table")[0][2] == "team/*=viewer"

        with httpx.Client(base_url=f"{seeded_kiln.url}/api/v1") as client:
            headers = {"Authorization": f"Bearer {issued[0]}"}
            permissions = client.get("/permission/", headers=headers).json()["data"]
            assert permissions["entity_roles"] == {"team/*": ["viewer"]}
            assert permissions["primary_namespace"] == "team"

            await pilot.press("up", "x")  # the newest token, CI (the cursor stayed on "test")
            assert isinstance(app.screen, Confirm) and "(CI, of" in app.screen.consequence
            await pilot.press("y")
            await wait_for(
                pilot, lambda: rows_of(app, "#tokens-table")[0][5] == "revoked", "revoked"
            )
            assert client.get("/permission/", headers=headers).status_code == 401

    drive(app, script)


def test_a_bad_token_form_is_refused_before_anything_is_sent(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="access")

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("t")
        await wait_for(pilot, lambda: len(rows_of(app, "#tokens-table")) == 1, "the tokens")
        await pilot.press("n", *"bad", "enter", *"team=viewer", "enter", "enter", "enter")
        await wait_for(pilot, lambda: "expected NAMESPACE/ENVIRONMENT" in said(app), "refusal")
        await pilot.press("n", *"bad", "enter", "enter", "enter", *"soon", "enter")
        await wait_for(pilot, lambda: "lifetime 'soon'" in said(app), "refusal")
        await pilot.press("r")
        await pilot.pause(0.5)
        assert len(rows_of(app, "#tokens-table")) == 1

    drive(app, script)


def test_an_operator_gives_a_namespace_a_role_and_takes_it_away(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="access")

    def grants() -> list[dict[str, Any]]:
        with seeded_kiln.api() as api:
            return list(api.get("/namespace/default/roles").json()["data"])

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("m", "n")
        assert isinstance(app.screen, Form)
        await pilot.press("tab", *"team", "enter")  # on default, as viewer (the defaults)
        await wait_for(pilot, lambda: len(rows_of(app, "#mappings-table")) == 1, "the mapping")
        assert rows_of(app, "#mappings-table") == [["default", "v2", "users of team", "viewer"]]
        assert [(g["other_namespace"], g["role"]) for g in grants()] == [("team", "viewer")]

        await pilot.press("x", "y")
        await wait_for(pilot, lambda: not rows_of(app, "#mappings-table"), "the mapping gone")
        assert grants() == []

    drive(app, script)


def test_an_operator_creates_a_user_disables_them_makes_them_admin_and_resets_the_password(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="access")

    def account(name: str) -> dict[str, Any]:
        with seeded_kiln.api() as api:
            found = api.get("/admin/users/").json()["data"]
        return next(item for item in found if item["username"] == name)

    def login(password: str) -> int:
        with httpx.Client(base_url=seeded_kiln.url) as client:
            answer = client.post("/login/", json={"username": "alice", "password": password})
            return answer.status_code

    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("u", "n")
        assert isinstance(app.screen, Form)
        await pilot.press(*"alice", "enter", *"s3cret-pass", "enter", *"s3cret-pass", "enter")
        await wait_for(pilot, lambda: rows_of(app, "#users-table") != [], "alice listed")
        assert rows_of(app, "#users-table")[0][:4] == ["alice", "", "active", "set"]
        assert login("s3cret-pass") == 200

        await pilot.press("d")
        assert isinstance(app.screen, Confirm) and "can no longer log in" in app.screen.consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: account("alice")["disabled"], "alice disabled")
        await wait_for(pilot, lambda: rows_of(app, "#users-table")[0][2] == "disabled", "shown")
        assert login("s3cret-pass") != 200
        await pilot.press("d")  # enabling again asks nothing
        await wait_for(pilot, lambda: not account("alice")["disabled"], "alice enabled")

        await pilot.press("a", "y")
        await wait_for(pilot, lambda: account("alice")["is_admin"], "alice an admin")
        await wait_for(pilot, lambda: rows_of(app, "#users-table")[0][1] == "admin", "shown")

        await pilot.press("p", *"new-pass-1", "enter", *"new-pass-2", "enter")
        await wait_for(pilot, lambda: "the two passwords differ" in said(app), "a refusal")
        await pilot.press("p", *"new-pass-1", "enter", *"new-pass-1", "enter")
        await wait_for(pilot, lambda: "new password set for alice" in said(app), "the change")
        assert login("new-pass-1") == 200 and login("s3cret-pass") != 200

    drive(app, script)

"""The environments screen against a live Kiln: browse namespaces, environments and builds,
switch an environment's current build, create and delete namespaces and environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from appliance.api.context import ApiContext
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.tui import SeededKiln, drive, rows_of, said, wait_for
from tests.fixtures.worker import drain
from tui.app import KilnConsole
from tui.widgets.dialogs import Confirm


def column(app: KilnConsole, table: str, index: int = 0) -> list[str]:
    return [row[index] for row in rows_of(app, f"#{table}-table")]


def test_an_operator_switches_the_current_build_of_an_environment(
    seeded_kiln: SeededKiln,
    console: Callable[..., KilnConsole],
    database: TestDatabase,
    api_context: ApiContext,
) -> None:
    with seeded_kiln.api() as api:
        rebuilt = api.put(f"/build/{seeded_kiln.demo_build}/").json()["data"]["build_id"]
        drain(database, api_context.build_settings, api_context.storage, concurrency=1)

        def current() -> int:
            return int(api.get("/environment/default/demo/").json()["data"]["current_build_id"])

        assert current() == rebuilt
        app = console(start="environments")

        async def script(pilot: Pilot[Any]) -> None:
            await wait_for(pilot, lambda: column(app, "namespaces") == ["default", "team"], "ns")
            await wait_for(pilot, lambda: column(app, "environments") == ["broken", "demo"], "envs")
            await pilot.press("tab", "down")  # the environments table, on demo
            await wait_for(
                pilot, lambda: column(app, "env-builds") == [str(rebuilt), "1"], "builds"
            )
            assert rows_of(app, "#env-builds-table")[0][4] == "current"

            await pilot.press("tab", "down")  # the builds table, on build 1
            await pilot.press("s")
            assert isinstance(app.screen, Confirm)
            assert f"switches from build {rebuilt} to build 1" in app.screen.consequence
            await pilot.press("y")
            await wait_for(pilot, lambda: current() == 1, "build 1 current again")
            await wait_for(
                pilot, lambda: rows_of(app, "#env-builds-table")[1][4] == "current", "the mark"
            )

            await pilot.press("up", "s", "y")  # a completed build: fine; back to the rebuild
            await wait_for(pilot, lambda: current() == rebuilt, "the rebuild current")

        drive(app, script)


def test_an_operator_creates_and_deletes_namespaces_and_environments(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    with seeded_kiln.api() as api:
        app = console(start="environments")

        async def script(pilot: Pilot[Any]) -> None:
            await wait_for(pilot, lambda: column(app, "environments") == ["broken", "demo"], "envs")

            await pilot.press("tab", "x")  # the environments table, on broken
            assert isinstance(app.screen, Confirm)
            assert "default/broken is deleted with its 1 build(s)" in app.screen.consequence
            await pilot.press("y")
            await wait_for(pilot, lambda: column(app, "environments") == ["demo"], "broken gone")
            assert api.get("/environment/default/broken/").status_code == 404

            await pilot.press("n", *"lab", "enter")
            await wait_for(pilot, lambda: "lab" in column(app, "namespaces"), "the new namespace")
            assert api.get("/namespace/lab/").status_code == 200

            await pilot.press("shift+tab")  # the namespaces table
            while rows_of(app, "#namespaces-table")[app.screen.focused.cursor_row][0] != "lab":  # type: ignore[union-attr]
                await pilot.press("down")
            await pilot.press("x")
            assert "Namespace lab is deleted with its 0 environment(s)" in app.screen.consequence  # type: ignore[attr-defined]
            await pilot.press("y")
            await wait_for(pilot, lambda: "lab" not in column(app, "namespaces"), "lab gone")
            assert api.get("/namespace/lab/").status_code == 404
            assert "namespace lab deleted" in said(app)

        drive(app, script)

"""The builds screen against a live Kiln: filter the table, read a build's log, cancel,
rebuild and delete with confirmation; refusals show the server's reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Select

from tests.fixtures.tui import (
    DEMO_SPEC,
    SeededKiln,
    drive,
    rows_of,
    said,
    submit,
    text_of,
    wait_for,
)
from tui.app import KilnConsole
from tui.screens.build_log import BuildLogScreen
from tui.widgets.dialogs import Confirm

TABLE = "#builds-table"


def ids(app: KilnConsole) -> list[str]:
    return [row[0] for row in rows_of(app, TABLE)]


def test_an_operator_filters_builds_and_reads_why_one_failed(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="builds")

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: ids(app) == ["3", "2", "1"], "the three builds")
        assert rows_of(app, TABLE)[1][:3] == ["2", "default/broken", "FAILED"]

        await pilot.press("slash", *"broken")
        await wait_for(pilot, lambda: ids(app) == ["2"], "only the broken build")
        assert "No candidates were found for kiln-no-such-package" in text_of(app, "#build-detail")

        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildLogScreen), "the log screen")
        await wait_for(
            pilot, lambda: "FAILED" in text_of(app, "#log-title"), "the build's status on top"
        )
        log = app.screen.query_one("#build-log")
        await wait_for(pilot, lambda: "SolveError" in "\n".join(log.lines), "the log's lines")  # type: ignore[attr-defined]
        await pilot.press("escape")

        app.screen.query_one("#builds-filter").clear()  # type: ignore[attr-defined]
        app.screen.query_one("#builds-status", Select).value = "COMPLETED"
        await wait_for(pilot, lambda: ids(app) == ["3", "1"], "the completed builds")

    drive(app, script)


def test_an_operator_cancels_rebuilds_and_deletes_builds_after_confirming(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    with seeded_kiln.api() as api:
        queued = submit(api, "team", "waiting", DEMO_SPEC)  # no worker runs: it stays QUEUED
        app = console(start="builds")

        def status(build_id: int) -> str:
            return str(api.get(f"/build/{build_id}/").json()["data"]["status"])

        async def script(pilot: Pilot[Any]) -> None:
            await wait_for(pilot, lambda: ids(app)[:1] == [str(queued)], "the queued build")

            await pilot.press("c")
            assert isinstance(app.screen, Confirm)
            assert "stops its work" in str(app.screen.consequence)
            await pilot.press("n")  # changes nothing
            assert status(queued) == "QUEUED"

            await pilot.press("c", "y")
            await wait_for(pilot, lambda: status(queued) == "CANCELED", "the build canceled")
            await wait_for(pilot, lambda: rows_of(app, TABLE)[0][2] == "CANCELED", "the table")

            await pilot.press("slash", *"default/demo", "escape")
            await wait_for(pilot, lambda: ids(app) == ["1"], "build 1 alone")
            await pilot.press("b", "y")
            await wait_for(pilot, lambda: "rebuild of 1" in said(app), "the rebuild's notice")
            rebuilt = api.get("/build/", params={"name": "demo", "status": "QUEUED"}).json()
            assert [build["id"] for build in rebuilt["data"]] == [queued + 1]

            await pilot.press("x", "y")  # build 1 is default/demo's current build
            await wait_for(pilot, lambda: "current build of default/demo" in said(app), "refusal")
            assert api.get("/build/1/").json()["data"]["deleted_on"] is None

            app.screen.query_one("#builds-filter").value = str(queued)  # type: ignore[attr-defined]
            await wait_for(pilot, lambda: ids(app) == [str(queued)], "the canceled build")
            await pilot.press("x")
            assert "cannot be undone" in str(app.screen.consequence)  # type: ignore[attr-defined]
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: api.get(f"/build/{queued}/").json()["data"]["deleted_on"] is not None,
                "the build deleted",
            )

        drive(app, script)

"""The logs screen against a live Kiln: the services' logs (``kiln web``'s here; the
supervisor's, followed live, in test_operator_walkthrough.py) filtered by service and level;
a build's log picked by id, narrowed to its errors or to some words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import RichLog, Select

from tests.fixtures.tui import SeededKiln, drive, text_of, wait_for
from tui.app import KilnConsole
from tui.screens.logs import LogsScreen


def lines(app: KilnConsole) -> list[str]:
    return [strip.text for strip in app.screen.query_one("#logs-view", RichLog).lines]


def choices(app: KilnConsole) -> list[str]:
    """What the service filter offers."""
    assert isinstance(app.screen, LogsScreen)
    return [value for _, value in app.screen.service_options]


def test_the_logs_screen_shows_the_services_logs_by_service_and_level(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="logs")

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: any("serving on http" in x for x in lines(app)), "records")
        line = next(x for x in lines(app) if "serving on http" in x)
        assert line.startswith("hh:mm:ss web") and " INFO " in line
        assert choices(app)[:4] == ["all", "supervisor", "postgres", "web"]
        assert choices(app)[-1] == "builds"

        app.screen.query_one("#logs-service", Select).value = "postgres"  # no log here
        await wait_for(pilot, lambda: lines(app) == [], "no records")
        app.screen.query_one("#logs-service", Select).value = "web"
        await wait_for(pilot, lambda: lines(app) != [], "the web process's records")
        assert all(" web " in x for x in lines(app))

        app.screen.query_one("#logs-level", Select).value = "WARNING"
        await wait_for(pilot, lambda: all(" INFO " not in x for x in lines(app)), "warnings")

    drive(app, script)


def test_the_logs_screen_shows_a_failed_builds_errors(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="logs")

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: lines(app) != [], "the services' records")
        await pilot.press("b", "2", "enter")
        await wait_for(pilot, lambda: "Build 2: FAILED" in text_of(app, "#logs-note"), "build 2")
        await wait_for(pilot, lambda: len(lines(app)) > 5, "its lines")
        app.screen.query_one("#logs-level", Select).value = "ERROR"
        await wait_for(pilot, lambda: len(lines(app)) == 2, "the error lines")
        assert "[solve] solve failed after" in lines(app)[0]
        assert "[build] build failed: linux-64" in lines(app)[1]

        app.screen.query_one("#logs-level", Select).clear()
        await pilot.press("slash", *"candidates")
        await wait_for(pilot, lambda: len(lines(app)) == 2, "the lines naming candidates")
        assert all("candidates" in line for line in lines(app))

    drive(app, script)

"""The dashboard against a live ``kiln web`` (no supervisor): queue, store, the latest failure
with its reason and its log, version and data dir, the job queue; and what it says about
services when no supervisor runs Kiln. (With ``kiln serve``'s supervisor:
test_operator_walkthrough.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Log

from tests.fixtures.tui import SeededKiln, drive, rows_of, said, text_of, wait_for
from tui.app import KilnConsole
from tui.formatting import Formats
from tui.screens.build_log import BuildLogScreen
from tui.screens.jobs import JobsScreen


def test_the_dashboard_shows_the_queue_the_store_and_why_the_last_build_failed(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(formats=Formats())  # real values: the store's free space, the data dir

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: rows_of(app, "#failures-table") != [], "the failures")
        [failure] = rows_of(app, "#failures-table")
        assert failure[:2] == ["2", "default/broken"]
        assert "No candidates were found for kiln-no-such-package" in text_of(
            app, "#failure-detail"
        )
        assert "failed 1 · workers 0" in text_of(app, "#queue-text")
        assert " free, " in text_of(app, "#store-line") and "% used" in text_of(app, "#store-line")
        assert text_of(app, "#about-line").startswith("Kiln 0.1.0 · data dir /")
        assert "no supervisor" in text_of(app, "#services-note")

        await pilot.press("R")
        assert "No supervisor runs this Kiln" in said(app)

        await pilot.press("tab", "tab", "enter")  # the failures table, its one row
        await wait_for(pilot, lambda: isinstance(app.screen, BuildLogScreen), "the build's log")
        log = app.screen.query_one(Log)
        await wait_for(pilot, lambda: any("SolveError" in line for line in log.lines), "lines")
        assert "FAILED — linux-64: the specification cannot be satisfied" in text_of(
            app, "#log-title"
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, BuildLogScreen), "back")

        await pilot.press("j")  # the job queue
        await wait_for(pilot, lambda: isinstance(app.screen, JobsScreen), "the jobs")
        await wait_for(pilot, lambda: len(rows_of(app, "#jobs-table")) == 3, "three jobs")
        assert [row[1:4] for row in rows_of(app, "#jobs-table")] == [
            ["build", f"build {n}", "succeeded"] for n in (3, 2, 1)
        ]
        await pilot.press("t", "y")  # a build's job: the server says to rebuild instead
        await wait_for(pilot, lambda: "PUT /api/v1/build/3/ (rebuild)" in said(app), "refusal")
        await pilot.press("escape")

    drive(app, script)

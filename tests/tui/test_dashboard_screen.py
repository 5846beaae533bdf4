"""The dashboard against a live ``kiln web`` (no supervisor): queue, store, the latest failure
with its reason and its log, version and data dir, the job queue; and what it says about
services when no supervisor runs Kiln. (With ``kiln serve``'s supervisor:
test_operator_walkthrough.py.)"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from textual.pilot import Pilot
from textual.widgets import Log, Sparkline

from appliance.db.models import StorageSample
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


def test_the_store_trend_is_the_workers_samples_of_the_last_day(
    seeded_kiln: SeededKiln,
    console: Callable[..., KilnConsole],
    db_sessions: sessionmaker[Session],
) -> None:
    now = datetime.now(UTC)
    with db_sessions.begin() as session:
        for hour in range(30):  # one sample an hour, growing; six are older than a day
            used = 2_000_000_000 - hour * 10_000_000
            session.add(
                StorageSample(
                    host="kiln-1", path="/srv/kiln/store", sampled_on=now - timedelta(hours=hour),
                    disk_total=4_000_000_000, disk_used=used, disk_free=4_000_000_000 - used,
                    store_size=used // 2,
                )
            )  # fmt: skip
    app = console(formats=Formats())

    async def script(pilot: Pilot[Any]) -> None:
        def points() -> list[float]:
            found = app.screen.query("#store-trend")
            return list(found.first(Sparkline).data or []) if found else []

        await wait_for(pilot, lambda: len(points()) > 1, "the stored trend")
        assert len(points()) in (24, 25)  # the last day, not the 30 hours
        assert points() == sorted(points())  # oldest first: the store grows
        assert "1.9 GiB free, 50% used" in text_of(app, "#store-line")

    drive(app, script)

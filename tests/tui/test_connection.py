"""Losing Kiln and getting it back: the console shows a banner and retries with backoff, without
crashing, and carries on once the server answers again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from textual.pilot import Pilot

from tests.fixtures.serve import wait_until_ready
from tests.fixtures.tui import SeededKiln, drive, rows_of, said, text_of, wait_for
from tui.app import KilnConsole
from tui.widgets.banner import ConnectionBanner


@contextlib.contextmanager
def restarted(kiln: SeededKiln) -> Iterator[subprocess.Popen[bytes]]:
    """``kiln web`` again, as the fixture started it (same data dir and port)."""
    with kiln.live.log.open("ab") as output:
        process = subprocess.Popen(
            kiln.live.process.args,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"{kiln.url}/healthz", process, 60, kiln.live.log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_a_lost_connection_shows_a_banner_and_recovers(
    seeded_kiln: SeededKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console(start="dashboard")
    web = seeded_kiln.live.process

    def banner() -> ConnectionBanner:
        return app.screen.query_one(ConnectionBanner)

    async def script(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: rows_of(app, "#failures-table") != [], "the dashboard")
        assert not banner().display

        web.send_signal(signal.SIGTERM)
        web.wait(30)
        await wait_for(pilot, lambda: bool(banner().display), "the banner")
        assert "Connection lost: cannot reach Kiln at" in text_of(app, "#connection-banner")
        await wait_for(
            pilot, lambda: "(attempt 2)" in text_of(app, "#connection-banner"), "retries"
        )

        await pilot.press("2")  # the console still works: another screen, its banner too
        await wait_for(pilot, lambda: bool(banner().display), "the builds screen's banner")

        with restarted(seeded_kiln):
            await wait_for(pilot, lambda: not banner().display, "the banner gone", timeout=40)
            assert "Connection to Kiln restored" in said(app)
            await wait_for(pilot, lambda: len(rows_of(app, "#builds-table")) == 3, "the builds")
            await pilot.press("q")

    drive(app, script)

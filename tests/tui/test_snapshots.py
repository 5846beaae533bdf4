"""The console's main screens as SVG snapshots, at 80x24 (an SSH session's default) and 120x40.

The data is fixed (``seeded_kiln``) and everything that changes between runs (times, pids, free
space, the server's port, temporary paths) is written as a placeholder by the steady formats, so
the snapshots are the same on every run. Update them after a deliberate change with
``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.fixtures.tui import SeededKiln, wait_for
from tui.app import KilnConsole

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


def until_rows(table: str, count: int) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """``run_before`` for a screenshot: wait until ``table`` shows ``count`` rows or more."""

    async def wait(pilot: Pilot[Any]) -> None:
        def loaded() -> bool:
            found = pilot.app.screen.query(table)
            return bool(found) and found.first(DataTable).row_count >= count

        await wait_for(pilot, loaded, f"{count} rows in {table}")
        await pilot.pause(0.2)

    return wait


def until_text(selector: str, text: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """``run_before``: wait until the widget ``selector`` shows ``text``."""

    async def wait(pilot: Pilot[Any]) -> None:
        def shown() -> bool:
            found = pilot.app.screen.query(selector)
            return bool(found) and text in str(found.first().render())

        await wait_for(pilot, shown, f"{text!r} in {selector}")
        await pilot.pause(0.2)

    return wait


Step = Callable[[Pilot[Any]], Awaitable[None]]


def keys(*pressed: str) -> Step:
    """``run_before`` step: press keys, then give the screen a moment to settle."""

    async def press(pilot: Pilot[Any]) -> None:
        await pilot.press(*pressed)
        await pilot.pause(0.3)

    return press


def steps(*sequence: Step) -> Step:
    """``run_before`` doing ``sequence`` in order."""

    async def run(pilot: Pilot[Any]) -> None:
        for step in sequence:
            await step(pilot)

    return run


@pytest.mark.parametrize("size", SIZES)
def test_the_main_screens_look_as_approved(
    size: str,
    seeded_kiln: SeededKiln,
    console: Callable[..., KilnConsole],
    snap_compare: Callable[..., bool],
) -> None:
    """Snapshots, in this order (``.svg``, ``.1.svg``, ...): dashboard, builds, environments,
    access (tokens), configuration (CondaStoreWorker's options) and logs (the failed build's
    lines that say why), with the fixed data of ``seeded_kiln``. Service logs name ports and
    pids, build logs temporary paths and build keys: only a build's lines without them are
    shown."""
    screens: list[tuple[str, Step]] = [
        ("dashboard", until_rows("#failures-table", 1)),
        ("builds", until_rows("#builds-table", 3)),
        ("environments", until_rows("#env-builds-table", 1)),
        ("access", steps(until_rows("#tokens-table", 1), keys("t"))),
        (
            "configuration",
            steps(until_rows("#config-table", 10), keys("slash", *"CondaStoreWorker", "escape")),
        ),
        (
            "logs",
            steps(
                until_text("#logs-note", ""),
                keys("b", "2", "enter"),
                until_text("#logs-note", "Build 2"),
                keys("slash", *"No candidates", "escape"),
            ),
        ),
    ]
    results = {
        screen: snap_compare(console(start=screen), terminal_size=SIZES[size], run_before=wait)
        for screen, wait in screens
    }
    assert all(results.values()), {screen: ok for screen, ok in results.items() if not ok}

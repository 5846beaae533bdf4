"""Getting around: keys, the command palette and the mouse reach every screen; the theme uses
the terminal's 16 colours; an expired token is renewed without the operator noticing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from textual.pilot import Pilot

from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tests.fixtures.tui import drive, wait_for
from tui.app import KilnConsole
from tui.client import KilnApiError, KilnClient
from tui.screens.access import AccessScreen
from tui.screens.builds import BuildsScreen
from tui.screens.configuration import ConfigurationScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.environments import EnvironmentsScreen
from tui.screens.logs import LogsScreen


def test_keys_the_palette_and_the_mouse_reach_every_screen(
    live_kiln: LiveKiln, console: Callable[..., KilnConsole]
) -> None:
    app = console()

    async def script(pilot: Pilot[Any]) -> None:
        assert app.theme == "ansi-dark" and app.current_theme.ansi  # the terminal's colours
        screens = {
            "1": DashboardScreen,
            "2": BuildsScreen,
            "3": EnvironmentsScreen,
            "4": AccessScreen,
            "5": ConfigurationScreen,
            "6": LogsScreen,
        }
        for key, screen in screens.items():
            await pilot.press(key)
            await wait_for(pilot, lambda s=screen: isinstance(app.screen, s), screen.__name__)

        await pilot.press("ctrl+p", *"Go to Builds")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BuildsScreen), "the palette's pick")

        links = str(app.screen.query_one("#navigation-links").render())
        await pilot.click("#navigation-links", offset=(links.index("4 Access") + 2, 0))
        await wait_for(pilot, lambda: isinstance(app.screen, AccessScreen), "the clicked link")
        await pilot.press("q")

    drive(app, script)
    assert app.return_code == 0


def test_an_expired_token_is_renewed_and_the_request_made_again(
    live_kiln: LiveKiln, callers: Callers
) -> None:
    short = callers.token({"*/*": ["admin"]}, lifetime=timedelta(seconds=1))
    fresh = callers.token({"*/*": ["admin"]})

    async def run() -> None:
        kiln = KilnClient(live_kiln.url, short, renew=lambda: fresh)
        stuck = KilnClient(live_kiln.url, short)
        try:
            await asyncio.sleep(2.5)
            assert (await kiln.permissions()).is_admin
            try:
                await stuck.permissions()
            except KilnApiError as error:
                assert error.status == 401 and "expired" in error.message
            else:
                raise AssertionError("an expired token was accepted")
        finally:
            await kiln.aclose()
            await stuck.aclose()

    asyncio.run(run())

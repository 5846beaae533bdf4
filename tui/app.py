"""``kiln tui``: the admin console, a Textual app that talks to a running Kiln over HTTP.

The app owns three things the screens share: the API client (:attr:`KilnConsole.kiln`), the
connection state (:attr:`KilnConsole.connection`, shown by every screen's banner) and the
store's disk samples (:attr:`KilnConsole.disk_samples`, the dashboard's trend). Each screen is
a *mode* (keys 1-6, the navigation line, or the command palette), so switching keeps each
screen's place.

Nothing here waits on the network in the UI's thread of control: screens fetch in workers, and
a lost connection starts :meth:`KilnConsole.reconnect`, which probes the server with growing
pauses (1 s doubling to :data:`MAX_BACKOFF`) until it answers; then the shown screen reloads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen

from tui.client import KilnApiError, KilnClient, KilnUnreachable, Renew
from tui.formatting import Formats
from tui.models import Permissions
from tui.screens.access import AccessScreen
from tui.screens.base import KilnScreen
from tui.screens.builds import BuildsScreen
from tui.screens.configuration import ConfigurationScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.environments import EnvironmentsScreen
from tui.screens.logs import LogsScreen
from tui.widgets.banner import Connection
from tui.widgets.dialogs import Notice
from tui.widgets.navigation import SCREENS

#: Longest pause between two reconnection attempts, in seconds.
MAX_BACKOFF = 30.0

#: Disk samples the dashboard's trend shows (one per dashboard refresh).
DISK_SAMPLES = 60

#: The theme: the terminal's own 16 ANSI colours, readable anywhere (SSH, old terminals).
DEFAULT_THEME = "ansi-dark"

#: Notifications kept for "Recent messages".
MESSAGES = 50


@dataclass(frozen=True)
class Said:
    """A notification the console showed."""

    severity: str
    title: str
    message: str

    def __str__(self) -> str:
        title = f"{self.title}: " if self.title else ""
        return f"[{self.severity}] {title}{self.message}"


class KilnConsole(App[None]):
    """The admin console of the Kiln at ``url``, acting with ``token``.

    ``renew`` mints a fresh token when the server says the current one expired (``kiln tui``
    on the Kiln host); ``formats`` writes times and other changing values (tests pass a steady
    one); ``start`` is the first screen; ``data_dir`` is shown when the server does not say.
    """

    CSS_PATH = "kiln.tcss"
    TITLE = "Kiln console"

    MODES: ClassVar[dict[str, str | type[Screen[None]]]] = {  # type: ignore[assignment]
        "dashboard": DashboardScreen,
        "builds": BuildsScreen,
        "environments": EnvironmentsScreen,
        "access": AccessScreen,
        "configuration": ConfigurationScreen,
        "logs": LogsScreen,
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"switch_mode('{mode}')", title, show=False)
            for mode, key, title in SCREENS
        ),
        Binding("q", "quit", "Quit"),
    ]

    connection: reactive[Connection] = reactive(Connection, always_update=True)

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        renew: Renew | None = None,
        formats: Formats | None = None,
        start: str = "dashboard",
        data_dir: str | None = None,
        theme: str = DEFAULT_THEME,
    ) -> None:
        super().__init__()
        self.kiln = KilnClient(url, token, renew=renew)
        self.formats = formats or Formats()
        self.start = start if start in self.MODES else "dashboard"
        self.local_data_dir = data_dir
        self.theme_name = theme
        #: Who the console is (``GET /api/v1/permission/``), once known.
        self.identity: Permissions | None = None
        #: The latest notifications, oldest first ("Recent messages" in the command palette).
        self.messages: deque[Said] = deque(maxlen=MESSAGES)
        #: The server's data dir and configuration file, once asked (dashboard).
        self.server_paths: tuple[str | None, str | None] | None = None
        #: Used bytes of the store's disk, one sample per dashboard refresh (oldest first).
        self.disk_samples: deque[float] = deque(maxlen=DISK_SAMPLES)

    def on_mount(self) -> None:
        if self.theme_name in self.available_themes:
            self.theme = self.theme_name
        self.switch_mode(self.start)
        self.check_identity()

    @work(group="identity")
    async def check_identity(self) -> None:
        """Who the token is: an operator needs admin on every namespace (``*/*``)."""
        try:
            identity = await self.kiln.permissions()
        except KilnUnreachable as error:
            self.connection_lost(error.message)
            return
        except KilnApiError as error:
            self.notify(f"The token is refused: {error.message}", severity="error", timeout=15)
            return
        self.identity = identity
        if not identity.is_admin:
            self.notify(
                "This token is not admin on every namespace (*/*): the admin screens will be "
                "refused. Use an admin token (kiln token create on the Kiln host).",
                severity="warning",
                timeout=15,
            )

    async def on_unmount(self) -> None:
        await self.kiln.aclose()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Show a notification as plain text (the server's messages may hold brackets that
        are not markup) and keep it in :attr:`messages`."""
        del markup
        self.messages.append(Said(severity, title, message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def action_show_messages(self) -> None:
        text = "\n".join(str(said) for said in self.messages) or "No messages yet."
        self.push_screen(Notice("Recent messages", text))

    # --- the connection -----------------------------------------------------------------------

    def connection_lost(self, reason: str) -> None:
        """A call found the server unreachable: show it, and try again until it answers."""
        if self.connection.up:
            self.connection = Connection(up=False, reason=reason)
            self.reconnect()

    def connection_ok(self) -> None:
        """A call got an answer (nothing to do unless the app thought the server was gone)."""
        if not self.connection.up:
            self.connection = Connection()

    @work(exclusive=True, group="reconnect")
    async def reconnect(self) -> None:
        delay = 1.0
        attempts = 0
        while not self.connection.up:
            self.connection = Connection(
                up=False, reason=self.connection.reason, attempts=attempts, retry_in=delay
            )
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await self.kiln.status()
            except KilnUnreachable as error:
                self.connection = Connection(up=False, reason=error.message, attempts=attempts)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            except KilnApiError:
                pass  # it answers: what it said is the screens' business
            self.connection = Connection()
            self.notify("Connection to Kiln restored", timeout=4)
            if isinstance(self.screen, KilnScreen):
                self.screen.reload()

    # --- the command palette ------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for mode, key, title in SCREENS:
            yield SystemCommand(
                f"Go to {title}", f"Show the {title.lower()} screen (key {key})",
                partial(self.switch_mode, mode),
            )  # fmt: skip
        yield SystemCommand(
            "Recent messages", "The notifications shown lately", self.action_show_messages
        )
        if isinstance(screen, KilnScreen):
            yield SystemCommand("Refresh", "Fetch this screen's data again (key r)", screen.reload)
            yield from screen.commands()
        yield from super().get_system_commands(screen)

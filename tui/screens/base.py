"""What every screen of the console shares: the frame, the way it calls Kiln, its refreshes.

A screen lays out its body in :meth:`KilnScreen.compose_body`; the frame adds the navigation
line, the connection banner and the footer with the screen's keys. Screens never wait on the
network in a handler: :meth:`KilnScreen.reload` starts the screen's ``load`` worker, which
fetches and posts a typed message back; actions run in :meth:`KilnScreen.act` (a worker that
calls Kiln, reports the server's answer and reloads).

Errors are handled in one place, :meth:`KilnScreen.call`: a lost connection goes to the app
(banner, retries with backoff), a refusal is shown as the server's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from tui.client import KilnApiError, KilnClient, KilnUnreachable
from tui.formatting import Formats
from tui.widgets.banner import Connection, ConnectionBanner
from tui.widgets.navigation import Navigation, title_of

if TYPE_CHECKING:
    from tui.app import KilnConsole

T = TypeVar("T")


class ConsoleScreen(Screen[None]):
    """A screen of the console: reaches Kiln through the app's client."""

    @property
    def console(self) -> KilnConsole:
        return cast("KilnConsole", self.app)

    @property
    def kiln(self) -> KilnClient:
        return self.console.kiln

    @property
    def formats(self) -> Formats:
        return self.console.formats

    def reload(self) -> None:
        """Fetch the screen's data again (override)."""

    async def call(self, request: Awaitable[T], *, quiet: bool = False) -> T | None:
        """Await a client call; its result, or None after reporting why it failed (a lost
        connection to the app; a refusal as a notification, unless ``quiet``)."""
        try:
            result = await request
        except KilnUnreachable as error:
            self.console.connection_lost(error.message)
            return None
        except KilnApiError as error:
            if not quiet:
                self.notify(error.message, title="Kiln refused", severity="error", timeout=8)
            return None
        self.console.connection_ok()
        return result

    @work(group="act")
    async def act(self, request: Awaitable[object], done: str | None = None) -> None:
        """Run a change (``request``); say ``done`` (or the server's message) and reload."""

        async def wrapped() -> tuple[object]:
            return (await request,)

        outcome = await self.call(wrapped())
        if outcome is None:
            self.reload()
            return
        message = done or (outcome[0] if isinstance(outcome[0], str) else "done")
        self.notify(message, title="Done", timeout=5)
        self.reload()


class KilnScreen(ConsoleScreen):
    """A screen of the console (one of the app's modes)."""

    #: The app mode this screen is shown in (its entry in the navigation line).
    MODE: ClassVar[str] = ""
    #: Seconds between automatic refreshes while the screen is shown (0: none).
    REFRESH_SECONDS: ClassVar[float] = 0.0

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "Refresh")]

    #: The widget focused when the screen is shown: the first table, so that keys act on it
    #: rather than type into a filter.
    AUTO_FOCUS = "DataTable"

    def commands(self) -> Iterable[SystemCommand]:
        """The screen's actions for the command palette: one per key binding it lists."""
        title = title_of(self.MODE)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if binding.action == "reload" or self.check_action(binding.action, ()) is False:
                continue
            key = binding.key.split(",")[0]
            yield SystemCommand(
                f"{title}: {binding.description}",
                f"key {key}",
                partial(self.run_action, binding.action),
            )

    def compose(self) -> ComposeResult:
        yield Navigation(self.MODE, self.formats.server(self.kiln.url))
        yield ConnectionBanner()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    def on_mount(self) -> None:
        self.watch(self.console, "connection", self.connection_changed)
        if self.REFRESH_SECONDS:
            self.set_interval(self.REFRESH_SECONDS, self.tick, name=f"{self.MODE}-refresh")

    def on_screen_resume(self) -> None:
        """Shown (first or again): fresh data."""
        self.reload()

    def connection_changed(self, connection: Connection) -> None:
        self.query_one(ConnectionBanner).show(connection)

    def tick(self) -> None:
        """The automatic refresh: only while shown and connected."""
        if self.is_current and self.console.connection.up:
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Fetch the screen's data again (in the ``load`` worker)."""
        self.load()

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        """Fetch what the screen shows and post it back as a message (override)."""

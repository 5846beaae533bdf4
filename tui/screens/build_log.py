"""One build's log: the whole of it for a finished build, a live tail for a running one.

Pushed over the builds (or dashboard) screen; Escape goes back. While the build runs, the log
follows the server's stream (``GET /api/v1/build/{id}/logs/?follow=true``) and the view keeps
to the end unless the operator scrolls up or presses ``f``; when the stream ends the build's
final status and reason are shown at the top.
"""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Footer, Log, Static

from tui.models import Build
from tui.screens.base import ConsoleScreen
from tui.widgets.dialogs import Confirm

#: Lines kept in view (the start of a very long log is dropped from the screen, not the server).
MAX_LINES = 20_000


class BuildLogScreen(ConsoleScreen):
    """The log of build ``build_id`` of ``environment``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("c", "cancel_build", "Cancel build"),
        Binding("r", "reload", "Reload"),
    ]

    class Status(Message):
        """The build as the server last described it."""

        def __init__(self, build: Build) -> None:
            super().__init__()
            self.build = build

    class Text(Message):
        """More of the log (``replace``: the whole log, replacing what is shown)."""

        def __init__(self, text: str, *, replace: bool = False) -> None:
            super().__init__()
            self.text = text
            self.replace = replace

    def __init__(self, build_id: int, environment: str) -> None:
        super().__init__()
        self.build_id = build_id
        self.environment = environment
        self.build: Build | None = None
        #: The end of the log after its last newline (the rest of that line comes later).
        self.partial = ""

    def compose(self) -> ComposeResult:
        yield Static(f"Build {self.build_id} of {self.environment}", id="log-title", markup=False)
        yield Log(max_lines=MAX_LINES, id="build-log", auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Log).focus()
        self.tail()

    @property
    def log_view(self) -> Log:
        return self.query_one("#build-log", Log)

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.tail()

    def action_toggle_follow(self) -> None:
        log = self.log_view
        log.auto_scroll = not log.auto_scroll
        if log.auto_scroll:
            log.scroll_end(animate=False)
        self.notify("Following the end of the log" if log.auto_scroll else "Not following")

    @work(exclusive=True, group="tail")
    async def tail(self) -> None:
        """Show the log; follow it while the build runs."""
        build = await self.call(self.kiln.build(self.build_id))
        if build is None:
            return
        self.post_message(self.Status(build))
        if build.finished:
            text = await self.call(self.kiln.build_log(self.build_id))
            if text is not None:
                self.post_message(self.Text(text, replace=True))
            return
        self.post_message(self.Text("", replace=True))
        if await self.call(self.follow()) is None:
            return
        build = await self.call(self.kiln.build(self.build_id))
        if build is not None:
            self.post_message(self.Status(build))

    async def follow(self) -> bool:
        """Post the log's chunks as they come, until the build ends (True)."""
        async for chunk in self.kiln.follow_build_log(self.build_id):
            self.post_message(self.Text(chunk))
        return True

    def on_build_log_screen_status(self, message: Status) -> None:
        self.build = message.build
        build = message.build
        reason = f" — {build.status_info}" if build.status_info else ""
        self.query_one("#log-title", Static).update(
            f"Build {build.id} of {self.environment}: {build.status}{reason}"
        )

    def on_build_log_screen_text(self, message: Text) -> None:
        log = self.log_view
        if message.replace:
            log.clear()
            self.partial = ""
        *lines, self.partial = (self.partial + message.text).split("\n")
        if lines:
            log.write_lines([self.formats.log_line(line) for line in lines])
        if message.replace and self.partial:  # a whole log whose last line has no newline
            log.write_line(self.formats.log_line(self.partial))
            self.partial = ""

    def action_cancel_build(self) -> None:
        build = self.build
        if build is None or build.finished:
            self.notify("This build has finished: nothing to cancel.")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.cancel_build(build.id))

        self.app.push_screen(
            Confirm(
                f"Cancel build {build.id}?",
                f"Build {build.id} of {self.environment} is {build.status}. Cancelling stops "
                "its work within seconds and marks it CANCELED.",
                verb="Cancel build",
            ),
            answered,
        )

"""Logs: what the supervisor and the services wrote, filtered by service and level, followed
live; and builds' logs.

Service logs come from the admin API (``GET /api/v1/admin/logs/``: the latest records, and
with ``follow=true`` new ones as they are written). A server without that endpoint gets a note
saying so, and the screen shows build logs instead: the newest build's, or the one asked for
with ``b``, followed while it runs. A build log has no levels: a line mentioning an error or a
failure counts as ERROR, a warning as WARNING, the rest as INFO.
"""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, RichLog, Select, Static

from tui import admin
from tui.admin import LogRecord
from tui.client import KilnApiError, KilnUnreachable
from tui.screens.base import KilnScreen
from tui.widgets.cells import log_level
from tui.widgets.dialogs import Field, Form

#: The service filter's value for every service, and for build logs.
ALL, BUILDS = "all", "builds"

#: Lines kept in view.
MAX_LINES = 5000

#: Records of the service logs fetched when the screen opens (the latest).
SHOWN_RECORDS = 500

_ERROR = re.compile(r"\b(error|failed|failure|traceback|exception)\b", re.IGNORECASE)
_WARNING = re.compile(r"\bwarn(ing)?\b", re.IGNORECASE)


def build_line_level(line: str) -> str:
    """The level a build log's line counts as (module docstring)."""
    if _ERROR.search(line):
        return "ERROR"
    if _WARNING.search(line):
        return "WARNING"
    return "INFO"


class LogsScreen(KilnScreen):
    """Service and build logs, filtered and followed."""

    MODE = "logs"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow"),
        Binding("b", "pick_build", "Build log"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "focus_log", "Log", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    class Records(Message):
        """Log lines to show (``replace``: instead of what is shown)."""

        def __init__(self, records: list[LogRecord], *, replace: bool = False) -> None:
            super().__init__()
            self.records = records
            self.replace = replace

    class Services(Message):
        """The services there are logs of (``builds``: show build logs from now on)."""

        def __init__(self, names: list[str], *, builds: bool = False) -> None:
            super().__init__()
            self.names = names
            self.builds = builds

    class Note(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self) -> None:
        super().__init__()
        self.follow = True
        self.records: list[LogRecord] = []
        #: False once the server said it has no log endpoint.
        self.service_logs = True
        #: The choices of the service filter, as last set.
        self.service_options: list[tuple[str, str]] = []
        #: The build whose log is shown in build-log mode (None: the newest).
        self.build_id: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="filters"):
            yield Select(
                [("all services", ALL), ("build logs", BUILDS)],
                value=ALL,
                allow_blank=False,
                id="logs-service",
                compact=True,
            )
            yield Select(
                [(f"{level} and up", level) for level in admin.LEVELS[:4]],
                prompt="any level",
                id="logs-level",
                compact=True,
            )
            yield Input(placeholder="/ words", id="logs-filter", compact=True)
        yield Static("", id="logs-note", classes="hint", markup=False)
        yield RichLog(max_lines=MAX_LINES, id="logs-view", wrap=False, markup=False)

    @property
    def view(self) -> RichLog:
        return self.query_one("#logs-view", RichLog)

    def service(self) -> str:
        value = self.query_one("#logs-service", Select).value
        return value if isinstance(value, str) else ALL

    def level(self) -> str | None:
        value = self.query_one("#logs-level", Select).value
        return value if isinstance(value, str) else None

    def reload(self) -> None:
        self.load()

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        """Show the chosen log, then follow it while following is on."""
        if self.service() == BUILDS or not self.service_logs:
            await self.show_build_log()
            return
        service = None if self.service() == ALL else self.service()
        try:
            # Following, the stream sends the latest records itself: ask only for the services.
            found = await self.kiln.service_logs(
                service=service, level=self.level(), lines=0 if self.follow else SHOWN_RECORDS
            )
        except KilnUnreachable as error:
            self.console.connection_lost(error.message)
            return
        except KilnApiError as error:
            if error.status in (404, 405):
                self.service_logs = False
                self.post_message(self.Services([], builds=True))
                self.post_message(
                    self.Note(
                        f"This server has no service log endpoint (GET {admin.LOGS} answered "
                        f"{error.status}); showing build logs (b: another build)."
                    )
                )
                await self.show_build_log()
                return
            self.post_message(self.Note(error.message))
            return
        self.post_message(self.Services(list(found.services)))
        self.post_message(self.Note(""))
        self.post_message(self.Records(list(found.records), replace=True))
        if not self.follow:
            return
        try:
            async for record in self.kiln.follow_service_logs(
                service=service, level=self.level(), lines=SHOWN_RECORDS
            ):
                self.post_message(self.Records([record]))
        except KilnUnreachable as error:
            self.console.connection_lost(error.message)
        except KilnApiError as error:
            self.post_message(self.Note(f"Following stopped: {error.message}"))

    async def show_build_log(self) -> None:
        """The log of :attr:`build_id` (or the newest build), followed while it runs."""
        build_id = self.build_id
        if build_id is None:
            newest = await self.call(self.kiln.builds(limit=1))
            if newest is None:
                return
            if not newest.items:
                self.post_message(self.Records([], replace=True))
                self.post_message(self.Note("No builds yet."))
                return
            build_id = newest.items[0].id
        build = await self.call(self.kiln.build(build_id))
        if build is None:
            return
        note = f"Build {build.id}: {build.status}" + (
            f" — {build.status_info}" if build.status_info else ""
        )
        if not self.service_logs:
            note = f"No service log endpoint on this server. {note}"
        self.post_message(self.Note(note))
        if build.finished or not self.follow:
            text = await self.call(self.kiln.build_log(build.id))
            if text is not None:
                self.post_message(self.Records(self.build_records(text), replace=True))
            return
        self.post_message(self.Records([], replace=True))
        partial = ""
        try:
            async for chunk in self.kiln.follow_build_log(build.id):
                *lines, partial = (partial + chunk).split("\n")
                if lines:
                    self.post_message(self.Records(self.build_records("\n".join(lines))))
        except KilnUnreachable as error:
            self.console.connection_lost(error.message)
        except KilnApiError as error:
            self.post_message(self.Note(error.message))

    def build_records(self, text: str) -> list[LogRecord]:
        return [
            LogRecord(None, "build", build_line_level(line), "", self.formats.log_line(line))
            for line in text.splitlines()
        ]

    def on_logs_screen_services(self, message: Services) -> None:
        """Offer each service in the filter (keeping the choice when it is still there)."""
        select = self.query_one("#logs-service", Select)
        options = [("all services", ALL), *((n, n) for n in message.names), ("build logs", BUILDS)]
        current = BUILDS if message.builds else self.service()
        if options == self.service_options and current == self.service():
            return
        self.service_options = options
        with select.prevent(Select.Changed):
            select.set_options(options)
            select.value = current if current in {value for _, value in options} else ALL

    # --- showing ----------------------------------------------------------------------------

    def on_logs_screen_note(self, message: Note) -> None:
        note = self.query_one("#logs-note", Static)
        note.update(message.text)
        note.display = bool(message.text)

    def on_logs_screen_records(self, message: Records) -> None:
        if message.replace:
            self.records = []
            self.view.clear()
        self.records.extend(message.records)
        del self.records[:-MAX_LINES]
        for record in message.records:
            self.write(record)

    def matches(self, record: LogRecord) -> bool:
        words = self.query_one("#logs-filter", Input).value.lower().split()
        text = f"{record.service} {record.logger} {record.message}".lower()
        return admin.at_least(record.level, self.level()) and all(w in text for w in words)

    def write(self, record: LogRecord) -> None:
        if not self.matches(record):
            return
        line = Text()
        if record.time is not None:
            line.append(self.formats.time_of_day(record.time) + " ")
        if record.service != "build":
            line.append(f"{record.service:<9} ", style="bold")
            line.append(f"{record.level:<7} ", style=log_level(record.level))
        line.append(record.message, style=log_level(record.level) if record.level != "INFO" else "")
        self.view.write(line, scroll_end=self.follow)

    def rewrite(self) -> None:
        self.view.clear()
        for record in self.records:
            self.write(record)

    @on(Select.Changed, "#logs-service")
    def service_changed(self) -> None:
        if self.service() != BUILDS:
            self.build_id = None
        self.reload()

    @on(Select.Changed, "#logs-level")
    def level_changed(self) -> None:
        if self.service() == BUILDS or not self.service_logs:
            self.rewrite()
        else:
            self.reload()

    @on(Input.Changed, "#logs-filter")
    def words_changed(self) -> None:
        self.rewrite()

    @on(Input.Submitted, "#logs-filter")
    def words_submitted(self) -> None:
        self.view.focus()

    # --- actions --------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify("Following new lines" if self.follow else "Not following")
        if self.follow:
            self.view.scroll_end(animate=False)
            self.reload()
        else:
            self.workers.cancel_group(self, "load")

    def action_focus_filter(self) -> None:
        self.query_one("#logs-filter", Input).focus()

    def action_focus_log(self) -> None:
        self.view.focus()

    def action_pick_build(self) -> None:
        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            text = values["build"].strip()
            if text and not text.isdigit():
                self.notify(f"{text!r} is not a build id (a number)", severity="error")
                return
            self.build_id = int(text) if text else None
            select = self.query_one("#logs-service", Select)
            if select.value != BUILDS:
                select.value = BUILDS  # reloads
            else:
                self.reload()

        self.app.push_screen(
            Form(
                "Show a build's log",
                [
                    Field(
                        "build",
                        "Build id (empty: the newest build)",
                        value=str(self.build_id or ""),
                    )
                ],
                submit="Show",
            ),
            answered,
        )

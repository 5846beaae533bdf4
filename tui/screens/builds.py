"""Builds: every build the console can see, newest first, filterable; open one's log; cancel,
rebuild or delete it (each change confirmed first, saying what will happen)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select, Static

from tui.models import Build, Environment
from tui.screens.base import KilnScreen
from tui.screens.build_log import BuildLogScreen
from tui.widgets.cells import build_status
from tui.widgets.dialogs import Confirm
from tui.widgets.table import KilnTable

#: The build statuses, for the status filter.
STATUSES = ("QUEUED", "BUILDING", "COMPLETED", "FAILED", "CANCELED")

#: How many of the newest builds the table holds.
SHOWN_BUILDS = 200


@dataclass(frozen=True)
class BuildRow:
    """A build with the name of its environment."""

    build: Build
    environment: str

    def matches(self, text: str) -> bool:
        """Whether every word of the filter matches: a number is a build id, other words
        appear in the environment's name, the status or the reason."""
        haystack = " ".join([self.environment, self.build.status, self.build.status_info or ""])
        return all(
            word == str(self.build.id) if word.isdigit() else word in haystack.lower()
            for word in text.lower().split()
        )


def environment_names(environments: list[Environment]) -> dict[int, str]:
    return {environment.id: environment.full_name for environment in environments}


class BuildsScreen(KilnScreen):
    """The build table, a filter line and the selected build's reason."""

    MODE = "builds"
    REFRESH_SECONDS = 5.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_log", "Log", priority=False),
        Binding("c", "cancel_build", "Cancel"),
        Binding("b", "rebuild", "Rebuild"),
        Binding("x,delete", "delete_build", "Delete"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "focus_table", "Table", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[BuildRow]) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[BuildRow] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="filters"):
            yield Input(
                placeholder="/ filter: build id, namespace/name, status, reason",
                id="builds-filter",
                compact=True,
            )
            yield Select(
                [(status.title(), status) for status in STATUSES],
                prompt="any status",
                id="builds-status",
                compact=True,
            )
        yield KilnTable(("id", "environment", "status", "scheduled", "took"), id="builds-table")
        yield Static("", id="build-detail", markup=False)

    @property
    def table(self) -> KilnTable:
        return self.query_one("#builds-table", KilnTable)

    def status_filter(self) -> str | None:
        value = self.query_one("#builds-status", Select).value
        return value if isinstance(value, str) else None

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        found = await self.call(
            asyncio.gather(
                self.kiln.builds(status=self.status_filter(), limit=SHOWN_BUILDS),
                self.kiln.environments(),
            )
        )
        if found is None:
            return
        builds, environments = found
        names = environment_names(environments)
        rows = [
            BuildRow(build, names.get(build.environment_id, f"environment {build.environment_id}"))
            for build in builds.items
        ]
        self.post_message(self.Loaded(rows))

    def on_builds_screen_loaded(self, message: Loaded) -> None:
        self.rows = message.rows
        self.show_rows()

    def show_rows(self) -> None:
        text = self.query_one("#builds-filter", Input).value.strip()
        formats = self.formats
        self.table.replace_rows(
            (
                str(row.build.id),
                (
                    str(row.build.id),
                    row.environment,
                    build_status(row.build.status, deleted=row.build.deleted_on is not None),
                    formats.moment(row.build.scheduled_on),
                    formats.elapsed(row.build.started_on, row.build.ended_on)
                    if row.build.started_on
                    else "-",
                ),
            )
            for row in self.rows
            if row.matches(text)
        )
        self.show_detail()

    @on(Input.Changed, "#builds-filter")
    def filter_changed(self) -> None:
        self.show_rows()

    @on(Input.Submitted, "#builds-filter")
    def filter_submitted(self) -> None:
        self.table.focus()

    @on(Select.Changed, "#builds-status")
    def status_changed(self) -> None:
        self.reload()

    @on(KilnTable.RowHighlighted)
    def row_highlighted(self) -> None:
        self.show_detail()

    @on(KilnTable.RowSelected)
    def row_selected(self) -> None:
        self.action_open_log()

    def selected(self) -> BuildRow | None:
        key = self.table.selected_key
        return next((row for row in self.rows if str(row.build.id) == key), None)

    def show_detail(self) -> None:
        row = self.selected()
        detail = self.query_one("#build-detail", Static)
        if row is None:
            detail.update("No builds match." if self.rows else "No builds yet.")
            return
        build = row.build
        reason = build.status_info or {
            "QUEUED": "waiting for a worker",
            "BUILDING": "running",
            "COMPLETED": "built",
        }.get(build.status, "")
        detail.update(f"Build {build.id} of {row.environment}: {build.status} — {reason}")

    def action_focus_filter(self) -> None:
        self.query_one("#builds-filter", Input).focus()

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_open_log(self) -> None:
        row = self.selected()
        if row is not None:
            self.app.push_screen(BuildLogScreen(row.build.id, row.environment))

    def action_cancel_build(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.build.finished:
            self.notify(f"Build {row.build.id} is {row.build.status}: nothing to cancel.")
            return
        build_id = row.build.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.cancel_build(build_id))

        self.app.push_screen(
            Confirm(
                f"Cancel build {build_id}?",
                f"Build {build_id} of {row.environment} is {row.build.status}. Cancelling stops "
                "its work within seconds and marks it CANCELED; the environment keeps its "
                "current build.",
                verb="Cancel build",
            ),
            answered,
        )

    def action_rebuild(self) -> None:
        row = self.selected()
        if row is None:
            return
        build_id = row.build.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.rebuild(build_id))

        self.app.push_screen(
            Confirm(
                f"Rebuild build {build_id}?",
                f"A new build of the same specification of {row.environment} is queued; "
                f"build {build_id} stays as it is.",
                verb="Rebuild",
            ),
            answered,
        )

    async def rebuild(self, build_id: int) -> str:
        new_id = await self.kiln.rebuild(build_id)
        return f"build {new_id} queued (rebuild of {build_id})"

    def action_delete_build(self) -> None:
        row = self.selected()
        if row is None:
            return
        build_id = row.build.id

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.delete_build(build_id))

        self.app.push_screen(
            Confirm(
                f"Delete build {build_id}?",
                f"Build {build_id} of {row.environment} is deleted: its installed environment "
                "and archives are removed (its log, lockfile and YAML are kept, as "
                "CondaStore.build_artifacts_kept_on_deletion says). This cannot be undone. "
                "A running build must be cancelled first; an environment's current build "
                "cannot be deleted.",
            ),
            answered,
        )

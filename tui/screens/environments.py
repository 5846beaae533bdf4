"""Environments and namespaces: browse them, make another build current, delete.

Three tables: namespaces (with what each holds), the environments of the highlighted
namespace, the builds of the highlighted environment. ``s`` makes the highlighted build the
environment's current one; ``x`` deletes what the focused table shows (namespace, environment
or build), after saying what goes with it.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Static

from tui.models import Build, Environment, Namespace, NamespaceUsage
from tui.screens.base import KilnScreen
from tui.screens.build_log import BuildLogScreen
from tui.widgets.cells import build_status, dim
from tui.widgets.dialogs import Confirm, Field, Form
from tui.widgets.table import KilnTable


class EnvironmentsScreen(KilnScreen):
    """Namespaces, their environments, an environment's builds."""

    MODE = "environments"
    REFRESH_SECONDS = 10.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "switch_build", "Make current"),
        Binding("x,delete", "delete", "Delete"),
        Binding("n", "new_namespace", "New namespace"),
        Binding("l", "open_log", "Log"),
        Binding("r", "reload", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(
            self,
            namespaces: list[Namespace],
            usage: dict[str, NamespaceUsage],
            environments: list[Environment],
        ) -> None:
            super().__init__()
            self.namespaces = namespaces
            self.usage = usage
            self.environments = environments

    class BuildsLoaded(Message):
        def __init__(self, environment_id: int, builds: list[Build]) -> None:
            super().__init__()
            self.environment_id = environment_id
            self.builds = builds

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: list[Namespace] = []
        self.usage: dict[str, NamespaceUsage] = {}
        self.environments: list[Environment] = []
        self.builds: list[Build] = []
        self.builds_of: int | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="environments-top"):
            with Vertical(id="namespaces-pane"):
                yield Label("Namespaces", classes="pane-title")
                yield KilnTable(("namespace", "envs", "size"), id="namespaces-table")
            with Vertical(id="environments-pane"):
                yield Label(
                    "Environments", classes="pane-title", id="environments-title", markup=False
                )
                yield KilnTable(("environment", "current", "description"), id="environments-table")
        yield Label("Builds", classes="pane-title", id="env-builds-title", markup=False)
        yield KilnTable(("id", "status", "scheduled", "size", ""), id="env-builds-table")
        yield Static("", id="environment-detail", markup=False)

    def table(self, name: str) -> KilnTable:
        return self.query_one(f"#{name}-table", KilnTable)

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        found = await self.call(
            asyncio.gather(self.kiln.namespaces(), self.kiln.usage(), self.kiln.environments())
        )
        if found is not None:
            self.post_message(self.Loaded(*found))

    def on_environments_screen_loaded(self, message: Loaded) -> None:
        self.namespaces = message.namespaces
        self.usage = message.usage
        self.environments = message.environments
        self.table("namespaces").replace_rows(
            (
                namespace.name,
                (
                    namespace.name,
                    str(self.usage[namespace.name].environments)
                    if namespace.name in self.usage
                    else "-",
                    self.formats.stored(self.usage[namespace.name].storage)
                    if namespace.name in self.usage
                    else "-",
                ),
            )
            for namespace in self.namespaces
        )
        self.show_environments()

    def selected_namespace(self) -> str | None:
        return self.table("namespaces").selected_key

    def selected_environment(self) -> Environment | None:
        key = self.table("environments").selected_key
        return next((env for env in self.environments if str(env.id) == key), None)

    def selected_build(self) -> Build | None:
        key = self.table("env-builds").selected_key
        return next((build for build in self.builds if str(build.id) == key), None)

    def show_environments(self) -> None:
        namespace = self.selected_namespace()
        shown = [env for env in self.environments if env.namespace == namespace]
        self.query_one("#environments-title", Label).update(
            f"Environments of {namespace}" if namespace else "Environments"
        )
        self.table("environments").replace_rows(
            (
                str(env.id),
                (
                    env.name,
                    str(env.current_build_id) if env.current_build_id else dim("none"),
                    env.description or "",
                ),
            )
            for env in shown
        )
        self.load_builds()

    @on(KilnTable.RowHighlighted, "#namespaces-table")
    def namespace_highlighted(self) -> None:
        self.show_environments()

    @on(KilnTable.RowHighlighted, "#environments-table")
    def environment_highlighted(self) -> None:
        self.load_builds()

    @on(KilnTable.RowHighlighted, "#env-builds-table")
    def build_highlighted(self) -> None:
        self.show_detail()

    @on(KilnTable.RowSelected, "#env-builds-table")
    def build_selected(self) -> None:
        self.action_open_log()

    @work(exclusive=True, group="env-builds")
    async def load_builds(self) -> None:
        environment = self.selected_environment()
        if environment is None:
            self.post_message(self.BuildsLoaded(0, []))
            return
        listing = await self.call(self.kiln.builds(environment_id=environment.id, limit=100))
        if listing is not None:
            self.post_message(self.BuildsLoaded(environment.id, listing.items))

    def on_environments_screen_builds_loaded(self, message: BuildsLoaded) -> None:
        self.builds = message.builds
        self.builds_of = message.environment_id
        environment = next(
            (env for env in self.environments if env.id == message.environment_id), None
        )
        current = environment.current_build_id if environment else None
        self.query_one("#env-builds-title", Label).update(
            f"Builds of {environment.full_name}" if environment else "Builds"
        )
        self.table("env-builds").replace_rows(
            (
                str(build.id),
                (
                    str(build.id),
                    build_status(build.status, deleted=build.deleted_on is not None),
                    self.formats.moment(build.scheduled_on),
                    self.formats.stored(build.size) if build.size else "-",
                    "current" if build.id == current else "",
                ),
            )
            for build in self.builds
        )
        self.show_detail()

    def show_detail(self) -> None:
        build = self.selected_build()
        detail = self.query_one("#environment-detail", Static)
        if build is None:
            detail.update("")
            return
        reason = f": {build.status_info}" if build.status_info else ""
        detail.update(f"Build {build.id} {build.status}{reason}")

    # --- actions --------------------------------------------------------------------------

    def action_open_log(self) -> None:
        build = self.selected_build()
        environment = self.selected_environment()
        if build is not None and environment is not None:
            self.app.push_screen(BuildLogScreen(build.id, environment.full_name))

    def action_switch_build(self) -> None:
        environment = self.selected_environment()
        build = self.selected_build()
        if environment is None or build is None:
            self.notify("Highlight a build of an environment first.")
            return
        if build.id == environment.current_build_id:
            self.notify(f"Build {build.id} is already the current build.")
            return
        if build.status != "COMPLETED" or build.deleted_on is not None:
            self.notify(
                f"Build {build.id} is {build.status}: only a completed build can become current.",
                severity="warning",
            )
            return
        was = environment.current_build_id

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(
                    self.kiln.switch_build(environment.namespace, environment.name, build.id),
                    done=f"{environment.full_name} now uses build {build.id}",
                )

        self.app.push_screen(
            Confirm(
                f"Make build {build.id} current?",
                f"{environment.full_name} switches from build {was or 'none'} to build "
                f"{build.id}: its envs/ link, its image's 'latest' tag and its lockfile follow. "
                "You can switch back the same way.",
                verb="Make current",
            ),
            answered,
        )

    def action_delete(self) -> None:
        focused = self.focused
        if focused is self.table("env-builds"):
            self.delete_build()
        elif focused is self.table("environments"):
            self.delete_environment()
        else:
            self.delete_namespace()

    def delete_namespace(self) -> None:
        name = self.selected_namespace()
        if name is None:
            return
        usage = self.usage.get(name, NamespaceUsage(0, 0, 0))

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.delete_namespace(name))

        self.app.push_screen(
            Confirm(
                f"Delete namespace {name}?",
                f"Namespace {name} is deleted with its {usage.environments} environment(s) and "
                f"{usage.builds} build(s) ({self.formats.stored(usage.storage)}): their installed "
                "environments, archives and images are removed. This cannot be undone.",
            ),
            answered,
        )

    def delete_environment(self) -> None:
        environment = self.selected_environment()
        if environment is None:
            return
        count = len(self.builds) if self.builds_of == environment.id else None

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.delete_environment(environment.namespace, environment.name))

        builds = f"its {count} build(s)" if count is not None else "all its builds"
        self.app.push_screen(
            Confirm(
                f"Delete environment {environment.full_name}?",
                f"{environment.full_name} is deleted with {builds}: installed environments, "
                "archives and images are removed. This cannot be undone.",
            ),
            answered,
        )

    def delete_build(self) -> None:
        build = self.selected_build()
        environment = self.selected_environment()
        if build is None or environment is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.delete_build(build.id))

        self.app.push_screen(
            Confirm(
                f"Delete build {build.id}?",
                f"Build {build.id} of {environment.full_name} is deleted: its installed "
                "environment and archives are removed (log, lockfile and YAML are kept). "
                "The current build cannot be deleted.",
            ),
            answered,
        )

    def action_new_namespace(self) -> None:
        def answered(values: dict[str, str] | None) -> None:
            if values and values["name"].strip():
                name = values["name"].strip()
                self.act(self.kiln.create_namespace(name), done=f"namespace {name} created")

        self.app.push_screen(
            Form("New namespace", [Field("name", "Name", placeholder="e.g. data-science")]),
            answered,
        )

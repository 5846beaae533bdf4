"""The dashboard: is Kiln healthy, what is it doing, what went wrong lately. Refreshes live.

- services the supervisor runs (PostgreSQL, web, workers): state, pid, uptime, restarts,
  memory; ``R`` restarts the highlighted one (after saying what that does);
- the queue: builds and jobs by status, live workers;
- the store's disk: free and used, with its trend over the last 24 hours (the workers' samples);
- running builds with their step and elapsed time, and the latest failures with their reason
  (Enter opens a build's log, ``c`` cancels a running one); ``j`` opens the job queue;
- Kiln's version, data dir and configuration file.

Every part is fetched in one worker; a part the server cannot give (no admin API, no
supervisor) says so in its place and the others still show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar, Generic, TypeVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Sparkline, Static

from tui import admin
from tui.client import KilnApiError, KilnUnreachable
from tui.formatting import clip
from tui.models import Build, ServerStatus
from tui.screens.base import KilnScreen
from tui.screens.build_log import BuildLogScreen
from tui.screens.jobs import JobsScreen
from tui.steps import current_step
from tui.widgets.cells import dim, service_state
from tui.widgets.dialogs import Confirm
from tui.widgets.table import KilnTable

T = TypeVar("T")

#: Builds shown in "running" and "recent failures".
SHOWN = 10

#: Widest reason shown in the failures table (the line below it shows all of it).
REASON_WIDTH = 60


@dataclass(frozen=True)
class Part(Generic[T]):
    """One part of the dashboard: its value, or why the server could not give it."""

    value: T | None = None
    problem: str = ""


@dataclass(frozen=True)
class RunningBuild:
    build: Build
    environment: str
    step: str | None


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows, fetched at once."""

    status: ServerStatus
    services: Part[admin.Services]
    queue: Part[admin.QueueStatistics]
    disks: Part[list[admin.StoreDisk]]
    running: list[RunningBuild] = field(default_factory=list)
    failures: list[tuple[Build, str]] = field(default_factory=list)
    #: The server's data dir and configuration file, when it says.
    data_dir: str | None = None
    config_file: str | None = None


async def part(request: Awaitable[T]) -> Part[T]:
    """``request``'s answer, or the server's reason for refusing it (a lost connection is
    not a part's problem: it propagates)."""
    try:
        return Part(await request)
    except KilnUnreachable:
        raise
    except KilnApiError as error:
        if error.status in (404, 405):
            return Part(problem="this server has no admin API for it (404)")
        return Part(problem=error.message)


class DashboardScreen(KilnScreen):
    """Services, queue, store, running builds and recent failures."""

    MODE = "dashboard"
    REFRESH_SECONDS = 2.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "restart_service", "Restart service"),
        Binding("c", "cancel_build", "Cancel build"),
        Binding("j", "jobs", "Jobs"),
        Binding("enter", "open_log", "Log", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: Snapshot | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="dashboard-top"):
            with Vertical(id="services-pane"):
                yield Label("Services", classes="pane-title", id="services-title")
                yield KilnTable(
                    ("service", "state", "pid", "up", "restarts", "memory"), id="services-table"
                )
                yield Static("", id="services-note", classes="hint", markup=False)
            with Vertical(id="queue-pane"):
                yield Label("Queue", classes="pane-title")
                yield Static("", id="queue-text", markup=False)
                yield Label("Store", classes="pane-title")
                yield Static("", id="store-line", markup=False)
                yield Sparkline([], id="store-trend")
        with Horizontal(id="dashboard-bottom"):
            with Vertical(id="running-pane"):
                yield Label("Running builds", classes="pane-title")
                yield KilnTable(("id", "environment", "step", "for"), id="running-table")
            with Vertical(id="failures-pane"):
                yield Label("Recent failures", classes="pane-title")
                yield KilnTable(("id", "environment", "reason"), id="failures-table")
        yield Static("", id="failure-detail", markup=False)
        yield Static("", id="about-line", markup=False)

    def table(self, name: str) -> KilnTable:
        return self.query_one(f"#{name}-table", KilnTable)

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        snapshot = await self.call(self.fetch())
        if snapshot is not None:
            self.post_message(self.Loaded(snapshot))

    async def fetch(self) -> Snapshot:
        kiln = self.kiln
        status, services, queue, disks = await asyncio.gather(
            kiln.status(),
            part(kiln.services()),
            part(kiln.queue()),
            part(kiln.store_disks()),
        )
        running, failed, environments = await asyncio.gather(
            kiln.builds(status="BUILDING", limit=SHOWN),
            kiln.builds(status="FAILED", limit=SHOWN),
            kiln.environments(),
        )
        names = {environment.id: environment.full_name for environment in environments}
        data_dir, config_file = await self.installation(services.value)
        logs = await asyncio.gather(
            *(kiln.build_log(build.id) for build in running.items), return_exceptions=True
        )
        return Snapshot(
            status=status,
            services=services,
            queue=queue,
            disks=disks,
            running=[
                RunningBuild(
                    build,
                    names.get(build.environment_id, "?"),
                    current_step(log) if isinstance(log, str) else None,
                )
                for build, log in zip(running.items, logs, strict=True)
            ],
            failures=[(build, names.get(build.environment_id, "?")) for build in failed.items],
            data_dir=data_dir,
            config_file=config_file,
        )

    async def installation(self, services: admin.Services | None) -> tuple[str | None, str | None]:
        """The server's data dir and configuration file: from the supervisor's report, else
        from the effective configuration (asked once: they do not change while it runs)."""
        if services is not None and services.data_dir:
            return services.data_dir, services.config_file
        console = self.console
        if console.server_paths is None:
            try:
                configuration = await self.kiln.configuration()
            except KilnUnreachable:
                raise
            except KilnApiError:
                console.server_paths = (console.local_data_dir, None)
            else:
                exists = configuration.config_file_exists
                console.server_paths = (
                    configuration.data_dir,
                    configuration.config_file if exists else None,
                )
        return console.server_paths

    def on_dashboard_screen_loaded(self, message: Loaded) -> None:
        snapshot = self.snapshot = message.snapshot
        self.show_services(snapshot.services)
        self.show_queue(snapshot.queue)
        self.show_store(snapshot.disks)
        formats = self.formats
        self.table("running").replace_rows(
            (
                str(item.build.id),
                (
                    str(item.build.id),
                    item.environment,
                    item.step or dim("starting"),
                    formats.elapsed(item.build.started_on),
                ),
            )
            for item in snapshot.running
        )
        self.table("failures").replace_rows(
            (
                str(build.id),
                (str(build.id), environment, clip(build.status_info or "no reason", REASON_WIDTH)),
            )
            for build, environment in snapshot.failures
        )
        about = [f"Kiln {snapshot.status.version}"]
        if snapshot.data_dir:
            about.append(f"data dir {formats.path(snapshot.data_dir)}")
        if snapshot.config_file:
            inside = snapshot.data_dir and snapshot.config_file.startswith(snapshot.data_dir + "/")
            config = (
                snapshot.config_file.removeprefix(f"{snapshot.data_dir}/")
                if inside
                else formats.path(snapshot.config_file)
            )
            about.append(f"config {config}")
        self.query_one("#about-line", Static).update(" · ".join(about))
        self.show_failure()

    def show_services(self, found: Part[admin.Services]) -> None:
        formats = self.formats
        services = found.value
        note = self.query_one("#services-note", Static)
        table = self.table("services")
        if services is None:
            table.replace_rows([])
            note.update(f"Services cannot be shown: {found.problem}")
            return
        table.replace_rows(
            (
                service.name,
                (
                    service.name,
                    service_state(service.state),
                    formats.pid(service.pid),
                    formats.seconds(service.uptime),
                    str(service.restarts),
                    formats.memory(service.memory),
                ),
            )
            for service in services.services
        )
        if not services.supervised or services.stale:
            note.update(services.message)
        else:
            healthy = all(service.state == "running" for service in services.services)
            note.update(
                ("All services are running." if healthy else "Some services are not running.")
                + self.latest_request(services)
            )

    @staticmethod
    def latest_request(services: admin.Services) -> str:
        if not services.requests:
            return ""
        request = services.requests[-1]
        return f" Last restart: {request.service} {request.state}" + (
            f" ({request.message})" if request.message else ""
        )

    def show_queue(self, found: Part[admin.QueueStatistics]) -> None:
        text = self.query_one("#queue-text", Static)
        queue = found.value
        if queue is None:
            text.update(found.problem)
            return
        builds = queue.builds_by_status
        jobs = queue.jobs_by_status
        lines = [
            f"queued {builds.get('QUEUED', 0)} · building {builds.get('BUILDING', 0)}",
            f"failed {builds.get('FAILED', 0)} · workers {queue.live_workers}",
            f"jobs todo {jobs.get('todo', 0)} · failed {jobs.get('failed', 0)}",
        ]
        if queue.oldest_queued_build is not None:
            lines.append(
                f"waiting: build {queue.oldest_queued_build}, "
                f"{self.formats.seconds(queue.oldest_queued_age)}"
            )
        text.update("\n".join(lines))

    def show_store(self, found: Part[list[admin.StoreDisk]]) -> None:
        line = self.query_one("#store-line", Static)
        trend = self.query_one("#store-trend", Sparkline)
        disks = found.value
        if not disks:
            line.update(found.problem or "no sample of the store's disk yet")
            return
        disk = disks[0]
        formats = self.formats
        line.update(f"{formats.disk(disk.free)} free, {formats.share(disk.used, disk.total)} used")
        if disk.trend:  # the server's samples (one a minute, the last 24 hours)
            trend.data = formats.trend(list(disk.trend))
            return
        samples = self.console.disk_samples  # an older server: sample while the console runs
        samples.append(float(disk.used))
        trend.data = formats.trend(list(samples))

    # --- actions --------------------------------------------------------------------------

    def selected_build(self) -> tuple[int, str] | None:
        focused = self.focused
        if focused is self.table("failures"):
            key = self.table("failures").selected_key
            return next(
                (
                    (build.id, environment)
                    for build, environment in (self.snapshot.failures if self.snapshot else [])
                    if str(build.id) == key
                ),
                None,
            )
        key = self.table("running").selected_key
        return next(
            (
                (item.build.id, item.environment)
                for item in (self.snapshot.running if self.snapshot else [])
                if str(item.build.id) == key
            ),
            None,
        )

    @on(KilnTable.RowHighlighted, "#failures-table")
    def failure_highlighted(self) -> None:
        self.show_failure()

    def show_failure(self) -> None:
        """The highlighted failure's whole reason (the table cuts it)."""
        detail = self.query_one("#failure-detail", Static)
        key = self.table("failures").selected_key
        failures = self.snapshot.failures if self.snapshot else []
        found = next(((b, e) for b, e in failures if str(b.id) == key), None)
        detail.display = found is not None
        if found is not None:
            build, environment = found
            detail.update(
                f"Build {build.id} ({environment}, Enter: log): {build.status_info or 'no reason'}"
            )

    @on(KilnTable.RowSelected, "#running-table, #failures-table")
    def build_selected(self) -> None:
        self.action_open_log()

    def action_jobs(self) -> None:
        self.app.push_screen(JobsScreen())

    def action_open_log(self) -> None:
        selected = self.selected_build()
        if selected is not None:
            self.app.push_screen(BuildLogScreen(*selected))

    def action_cancel_build(self) -> None:
        key = self.table("running").selected_key
        running = self.snapshot.running if self.snapshot else []
        item = next((item for item in running if str(item.build.id) == key), None)
        if item is None:
            self.notify("No running build is highlighted.")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.cancel_build(item.build.id))

        self.app.push_screen(
            Confirm(
                f"Cancel build {item.build.id}?",
                f"Build {item.build.id} of {item.environment} is running"
                + (f" ({item.step})" if item.step else "")
                + ". Cancelling stops its work within seconds and marks it CANCELED; the "
                "environment keeps its current build.",
                verb="Cancel build",
            ),
            answered,
        )

    def action_restart_service(self) -> None:
        services = self.snapshot.services.value if self.snapshot else None
        if services is None or not services.supervised:
            self.notify(
                "No supervisor runs this Kiln: restart its processes the way they were started.",
                severity="warning",
            )
            return
        self.ask_restart(self.table("services").selected_key or "")

    def ask_restart(self, target: str) -> None:
        """Confirm, then ask the supervisor to restart ``target`` (a service, ``workers`` or
        ``all``)."""
        services = self.snapshot.services.value if self.snapshot else None
        if services is None or target not in services.restart_targets:
            self.notify(f"Cannot restart {target!r}.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.restart(target))

        self.app.push_screen(
            Confirm(f"Restart {target}?", restart_consequence(target), verb="Restart"),
            answered,
        )

    async def restart(self, target: str) -> str:
        requested = await self.kiln.restart_service(target)
        return requested.message

    def commands(self) -> Iterable[SystemCommand]:
        yield from super().commands()
        services = self.snapshot.services.value if self.snapshot else None
        if services is None or not services.supervised:
            return
        for target in services.restart_targets:
            yield SystemCommand(
                f"Restart {target}",
                restart_consequence(target),
                partial(self.ask_restart, target),
            )


def restart_consequence(target: str) -> str:
    """What restarting ``target`` does, in words."""
    if target == "postgres":
        return (
            "PostgreSQL stops and starts again, and with it every other service (they all "
            "need the database): the web API is unavailable for a few seconds and running "
            "builds are stopped and queued again."
        )
    if target == "all":
        return (
            "Every service restarts in order (PostgreSQL, web, workers): the web API is "
            "unavailable for a few seconds; running builds get the drain timeout to finish."
        )
    if target == "workers" or target.startswith("worker"):
        what = "Every worker restarts" if target == "workers" else f"{target} restarts"
        return (
            f"{what} and reads the configuration again. Running builds get "
            "Supervisor.drain_timeout to finish; builds still running then are stopped and "
            "queued again."
        )
    if target == "web":
        return (
            "The web process restarts and reads the configuration again: open requests get "
            "their stop timeout to finish; the API and UI are unavailable for a moment."
        )
    return f"{target} stops and starts again."

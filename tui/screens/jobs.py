"""The job queue: every job the workers ran or will run, newest first; retry a failed one,
cancel one that waits. Pushed over the dashboard (``j``); Escape goes back.

A build's own job is neither retried nor canceled here (the server refuses and says to rebuild
or cancel the build instead, so that the build and its job stay in step): the message is shown
as the server wrote it.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Select, Static

from tui.admin import Job
from tui.screens.base import ConsoleScreen
from tui.widgets.dialogs import Confirm
from tui.widgets.table import KilnTable

#: Procrastinate's job statuses, for the filter.
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")

#: Jobs shown (the newest).
SHOWN_JOBS = 200


def subject(job: Job) -> str:
    """What the job works on, from its arguments (``build 12``), else its arguments."""
    if "build_id" in job.args:
        return f"build {job.args['build_id']}"
    return ", ".join(f"{key}={value}" for key, value in job.args.items())


class JobsScreen(ConsoleScreen):
    """The queue's jobs, filterable by status."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("t", "retry", "Retry"),
        Binding("c", "cancel_job", "Cancel"),
        Binding("r", "reload", "Refresh"),
    ]

    class Loaded(Message):
        def __init__(self, jobs: list[Job], count: int) -> None:
            super().__init__()
            self.jobs = jobs
            self.count = count

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Job] = []

    def compose(self) -> ComposeResult:
        yield Static("Jobs of the queue", id="log-title", markup=False)
        with Horizontal(classes="filters"):
            yield Select(
                [(status, status) for status in JOB_STATUSES],
                prompt="any status",
                id="jobs-status",
                compact=True,
            )
        yield KilnTable(
            ("id", "task", "for", "status", "tries", "queued", "ended"), id="jobs-table"
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(KilnTable).focus()
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.load()

    def status(self) -> str | None:
        value = self.query_one("#jobs-status", Select).value
        return value if isinstance(value, str) else None

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        listing = await self.call(self.kiln.jobs(status=self.status(), limit=SHOWN_JOBS))
        if listing is not None:
            self.post_message(self.Loaded(listing.items, listing.count))

    def on_jobs_screen_loaded(self, message: Loaded) -> None:
        self.jobs = message.jobs
        formats = self.formats
        self.query_one("#log-title", Static).update(
            f"Jobs of the queue: {len(message.jobs)} of {message.count} shown, newest first"
        )
        self.query_one(KilnTable).replace_rows(
            (
                str(job.id),
                (
                    str(job.id),
                    job.task.removeprefix("kiln."),
                    subject(job),
                    job.status,
                    str(job.attempts),
                    formats.moment(job.deferred_at),
                    formats.moment(job.ended_at),
                ),
            )
            for job in message.jobs
        )

    @on(Select.Changed, "#jobs-status")
    def status_changed(self) -> None:
        self.reload()

    def selected(self) -> Job | None:
        key = self.query_one(KilnTable).selected_key
        return next((job for job in self.jobs if str(job.id) == key), None)

    def action_retry(self) -> None:
        job = self.selected()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.retry_job(job.id))

        self.app.push_screen(
            Confirm(
                f"Retry job {job.id}?",
                f"Job {job.id} ({job.task}, {subject(job)}) is queued again for a worker "
                f"(attempt {job.attempts + 1}). Only failed jobs can be retried.",
                verb="Retry",
            ),
            answered,
        )

    def action_cancel_job(self) -> None:
        job = self.selected()
        if job is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.act(self.kiln.cancel_job(job.id))

        self.app.push_screen(
            Confirm(
                f"Cancel job {job.id}?",
                f"Job {job.id} ({job.task}, {subject(job)}) will not run. Only jobs still "
                "waiting for a worker can be canceled.",
                verb="Cancel job",
            ),
            answered,
        )

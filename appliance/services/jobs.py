"""The job queue as operators see it: statistics, the jobs, and retrying or canceling one.

Procrastinate keeps the queue in its own tables (``procrastinate_jobs``, ``procrastinate_events``;
appliance.db.queue_schema). Where its :class:`~procrastinate.manager.JobManager` has an API for
what a use case does, that API is used (retry, cancel), run inside the use case's own
transaction through :class:`SessionConnector`, so the permission check and the change
are one transaction and no second connection pool is opened in the web process. The paged job
list has no JobManager API (``list_jobs`` returns every match at once), so it is a query of its
own on the same table, with the times of each job taken from its events; the statistics are one
grouped count (:func:`queue_statistics` says why not the manager's ``list_tasks``).

Rules (each refusal a 409 that says what to do instead):

- retry: only ``failed`` jobs (Procrastinate sets them ``todo`` again, attempts + 1);
- cancel: only ``todo`` jobs (Procrastinate sets them ``cancelled``; a running job is not
  interrupted here);
- build jobs (``kiln.build``) are neither: a build's job and its row move together, so a build
  is canceled with ``PUT /api/v1/build/{id}/cancel/`` and built again with
  ``PUT /api/v1/build/{id}/`` (a retried job would find its build FAILED and do nothing; a
  canceled one would leave the build QUEUED until recovery noticed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from procrastinate.connector import BaseConnector
from procrastinate.manager import JobManager
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    String,
    cast,
    column,
    func,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import ENUM, JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from appliance.common.errors import KilnError
from appliance.db.enums import BuildStatus
from appliance.db.models import Build
from appliance.db.status import builds_by_status, worker_heartbeats
from appliance.queue.app import WorkerSettings
from appliance.queue.tasks import BUILD
from appliance.services.access import Caller
from appliance.services.build_queries import check_text
from appliance.services.listing import Listing, PageRequest, paginate
from appliance.services.operations import require_operator

#: Procrastinate's job statuses (``aborting`` has not been used since Procrastinate 3).
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")
#: Sort keys of the job list (default: newest first).
JOB_SORT_KEYS = ("id",)
#: Event types that end a job.
_ENDING_EVENTS = ("succeeded", "failed", "cancelled", "aborted")
#: Procrastinate's enum types, so that values are sent as them (``::procrastinate_job_status``).
_JOB_STATUS = ENUM(*JOB_STATUSES, "aborting", name="procrastinate_job_status", create_type=False)
_EVENT_TYPE = ENUM(
    "deferred", "started", "deferred_for_retry", "failed", "succeeded", "cancelled",
    "abort_requested", "aborted", "scheduled", "retried",
    name="procrastinate_job_event_type", create_type=False,
)  # fmt: skip


class JobNotFound(KilnError):
    """No such job."""

    code = "not_found"


class JobConflict(KilnError):
    """The job is not in a state that allows this; the message says what to do instead."""

    code = "conflict"


class InvalidJobFilter(KilnError):
    """A job filter names something that does not exist."""

    code = "invalid_filter"


# --- Procrastinate's job manager inside a use case's transaction --------------------------------


class SessionConnector(BaseConnector):
    """A Procrastinate connector that runs the job manager's queries on a SQLAlchemy session's
    connection, inside its transaction. Synchronous only (use cases are), and for the manager's
    queries only: no LISTEN/NOTIFY, no pool of its own."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_sync_connector(self) -> BaseConnector:
        return self

    def open(self, pool: Any = None) -> None:  # pragma: no cover - nothing to open
        return None

    def close(self) -> None:  # pragma: no cover - nothing to close
        return None

    def _execute(self, query: str, arguments: Mapping[str, Any]) -> Any:
        # Procrastinate's queries use psycopg's %(name)s placeholders: hand them to the driver.
        return self._session.connection().exec_driver_sql(query, dict(arguments))

    def execute_query(self, query: str, **arguments: Any) -> None:
        self._execute(query, arguments)

    def execute_query_one(self, query: str, **arguments: Any) -> dict[str, Any]:
        return dict(self._execute(query, arguments).mappings().one())

    def execute_query_all(self, query: str, **arguments: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self._execute(query, arguments).mappings().all()]


def job_manager(session: Session) -> JobManager:
    """Procrastinate's job manager on ``session``'s transaction."""
    return JobManager(SessionConnector(session))


# --- wire types -------------------------------------------------------------------------------


class JobCounts(msgspec.Struct, kw_only=True):
    """Jobs of one task or queue, by status (every status, zeros included)."""

    name: str
    total: int
    by_status: dict[str, int]


class OldestQueuedBuild(msgspec.Struct, kw_only=True):
    """The build that has waited longest for a worker."""

    build_id: int
    scheduled_on: datetime
    age_seconds: float


class QueueStatistics(msgspec.Struct, kw_only=True):
    """The queue at a glance."""

    #: Every status, zeros included.
    jobs_by_status: dict[str, int]
    jobs_by_task: list[JobCounts]
    jobs_by_queue: list[JobCounts]
    #: Builds that exist (not deleted), every status, zeros included.
    builds_by_status: dict[str, int]
    oldest_queued_build: OldestQueuedBuild | None
    #: Seconds the oldest ``todo`` job has waited since it was deferred (None: nothing waits).
    oldest_todo_job_age: float | None
    #: Workers that reported alive within the stalled-worker timeout.
    live_workers: int


class Job(msgspec.Struct, kw_only=True):
    """One job of the queue."""

    id: int
    task: str
    queue: str
    status: str
    args: dict[str, Any]
    attempts: int
    priority: int
    lock: str | None
    queueing_lock: str | None
    #: Not before this time (None: as soon as possible).
    scheduled_at: datetime | None
    abort_requested: bool
    worker_id: int | None
    #: From the job's events: when it was deferred, last started, and ended.
    deferred_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


# --- statistics -------------------------------------------------------------------------------

#: A worker is live when its heartbeat is at most this old (seconds; appliance.queue.app).
LIVE_WORKER_SECONDS = WorkerSettings().stalled_worker_timeout


def queue_statistics(session: Session, caller: Caller) -> QueueStatistics:
    """Jobs by status, task and queue; builds by status; what waits longest.

    One grouped count over the jobs table gives all three breakdowns (Procrastinate's own
    ``list_tasks``/``list_queues`` scan it once per task or queue: about 10 times slower with
    200,000 jobs, and the console asks every few seconds)."""
    require_operator(session, caller)
    rows = session.execute(
        select(_JOBS.c.task_name, _JOBS.c.queue_name, _JOBS.c.status, func.count()).group_by(
            _JOBS.c.task_name, _JOBS.c.queue_name, _JOBS.c.status
        )
    ).tuples()
    by_task: dict[str, dict[str, int]] = {}
    by_queue: dict[str, dict[str, int]] = {}
    jobs_by_status = dict.fromkeys(JOB_STATUSES, 0)
    for task, queue, status, count in rows:
        for breakdown, name in ((by_task, task), (by_queue, queue)):
            counts = breakdown.setdefault(name, dict.fromkeys(JOB_STATUSES, 0))
            counts[status] = counts.get(status, 0) + count
        jobs_by_status[status] = jobs_by_status.get(status, 0) + count
    connection = session.connection()
    existing = builds_by_status(connection)
    builds = {status.value: existing.get(status.value, 0) for status in BuildStatus}
    now = datetime.now(UTC)
    oldest = session.execute(
        select(Build.id, Build.scheduled_on)
        .where(Build.status == BuildStatus.QUEUED, Build.deleted_on.is_(None))
        .order_by(Build.scheduled_on, Build.id)
        .limit(1)
    ).first()
    oldest_build = None
    if oldest is not None:
        oldest_build = OldestQueuedBuild(
            build_id=oldest.id,
            scheduled_on=oldest.scheduled_on,
            age_seconds=max(0.0, (now - oldest.scheduled_on).total_seconds()),
        )
    waiting_since = session.scalar(
        select(func.min(_EVENTS.c.at)).where(
            _EVENTS.c.type == "deferred",
            _EVENTS.c.job_id.in_(select(_JOBS.c.id).where(_JOBS.c.status == "todo")),
        )
    )
    heartbeats = worker_heartbeats(connection)
    live = [worker for worker in heartbeats if worker.age_seconds <= LIVE_WORKER_SECONDS]
    return QueueStatistics(
        jobs_by_status=jobs_by_status,
        jobs_by_task=_counted(by_task),
        jobs_by_queue=_counted(by_queue),
        builds_by_status=builds,
        oldest_queued_build=oldest_build,
        oldest_todo_job_age=(
            max(0.0, (now - waiting_since).total_seconds()) if waiting_since is not None else None
        ),
        live_workers=len(live),
    )


def _counted(found: Mapping[str, Mapping[str, int]]) -> list[JobCounts]:
    return [
        JobCounts(name=name, total=sum(counts.values()), by_status=dict(counts))
        for name, counts in sorted(found.items())
    ]


# --- the job list -----------------------------------------------------------------------------

_JOBS = table(
    "procrastinate_jobs",
    column("id", BigInteger),
    column("queue_name", String),
    column("task_name", String),
    column("priority", Integer),
    column("lock", String),
    column("queueing_lock", String),
    column("args", JSONB),
    column("status", _JOB_STATUS),
    column("scheduled_at", DateTime(timezone=True)),
    column("attempts", Integer),
    column("abort_requested", Boolean),
    column("worker_id", BigInteger),
)
_EVENTS = table(
    "procrastinate_events",
    column("job_id", BigInteger),
    column("type", _EVENT_TYPE),
    column("at", DateTime(timezone=True)),
)


def _event_time(kind: tuple[str, ...], *, latest: bool) -> Any:
    aggregate = func.max if latest else func.min
    return (
        select(aggregate(_EVENTS.c.at))
        .where(_EVENTS.c.job_id == _JOBS.c.id, _EVENTS.c.type.in_(kind))
        .scalar_subquery()
    )


def _job_columns() -> list[Any]:
    return [
        _JOBS.c.id,
        _JOBS.c.task_name,
        _JOBS.c.queue_name,
        cast(_JOBS.c.status, String).label("status"),
        _JOBS.c.args,
        _JOBS.c.attempts,
        _JOBS.c.priority,
        _JOBS.c.lock,
        _JOBS.c.queueing_lock,
        _JOBS.c.scheduled_at,
        _JOBS.c.abort_requested,
        _JOBS.c.worker_id,
        _event_time(("deferred",), latest=False).label("deferred_at"),
        _event_time(("started",), latest=True).label("started_at"),
        _event_time(_ENDING_EVENTS, latest=True).label("ended_at"),
    ]


def _job(row: Any) -> Job:
    return Job(
        id=int(row.id),
        task=row.task_name,
        queue=row.queue_name,
        status=row.status,
        args=dict(row.args or {}),
        attempts=int(row.attempts),
        priority=int(row.priority),
        lock=row.lock,
        queueing_lock=row.queueing_lock,
        scheduled_at=row.scheduled_at,
        abort_requested=bool(row.abort_requested),
        worker_id=row.worker_id,
        deferred_at=row.deferred_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def list_jobs(
    session: Session,
    caller: Caller,
    page: PageRequest,
    *,
    status: str | None = None,
    task: str | None = None,
    queue: str | None = None,
) -> Listing[Job]:
    """One page of jobs by id (``page.descending``: newest first, the API's default);
    ``status`` must be one of :data:`JOB_STATUSES`, ``task`` and ``queue`` are exact names."""
    require_operator(session, caller)
    statement = select(*_job_columns())
    if status is not None:
        if status not in JOB_STATUSES:
            raise InvalidJobFilter(
                f"status {status!r} is not a job status; allowed: {', '.join(JOB_STATUSES)}"
            )
        statement = statement.where(_JOBS.c.status == status)
    if check_text("task", task) is not None:
        statement = statement.where(_JOBS.c.task_name == task)
    if check_text("queue", queue) is not None:
        statement = statement.where(_JOBS.c.queue_name == queue)
    rows, count = paginate(
        session,
        statement,
        page,
        sort_columns={"id": [_JOBS.c.id]},
        default_sort=(),
        tiebreak=_JOBS.c.id,
    )
    return Listing(items=[_job(row) for row in rows], count=count, page=page.page, size=page.size)


def _find(session: Session, job_id: int) -> Job:
    if not 0 < job_id < 2**63:
        raise JobNotFound(f"job {job_id} does not exist")
    row = session.execute(select(*_job_columns()).where(_JOBS.c.id == job_id)).first()
    if row is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return _job(row)


def get_job(session: Session, caller: Caller, job_id: int) -> Job:
    """One job, with its times."""
    require_operator(session, caller)
    return _find(session, job_id)


def _refuse_build_jobs(job: Job, action: str) -> None:
    if job.task != BUILD.name:
        return
    build = job.args.get("build_id")
    target = f"/api/v1/build/{build}/" if isinstance(build, int) else "/api/v1/build/{id}/"
    retry = action == "retry"
    instead = f"PUT {target} (rebuild)" if retry else f"PUT {target}cancel/ (cancel)"
    raise JobConflict(
        f"job {job.id} builds build {build}: a build's job cannot be "
        f"{'retried' if retry else 'canceled'} directly; use "
        f"{instead} so that the build and its job stay in step"
    )


def retry_job(session: Session, caller: Caller, job_id: int) -> Job:
    """Queue a failed job again (module docstring)."""
    require_operator(session, caller)
    job = _find(session, job_id)
    _refuse_build_jobs(job, "retry")
    if job.status != "failed":
        raise JobConflict(
            f"job {job_id} is {job.status}; only failed jobs can be retried"
            + ("" if job.status != "todo" else " (it is already waiting for a worker)")
        )
    try:
        job_manager(session).retry_job_by_id(job_id, retry_at=datetime.now(UTC))
    except DBAPIError as error:  # it changed state since it was read
        raise JobConflict(f"job {job_id} cannot be retried now: {error.orig}") from None
    return _find(session, job_id)


def cancel_job(session: Session, caller: Caller, job_id: int) -> Job:
    """Cancel a job that waits for a worker (module docstring)."""
    require_operator(session, caller)
    job = _find(session, job_id)
    _refuse_build_jobs(job, "cancel")
    if job.status != "todo" or not job_manager(session).cancel_job_by_id(job_id):
        current = _find(session, job_id).status
        raise JobConflict(
            f"job {job_id} is {current}; only jobs waiting for a worker (todo) can be canceled"
        )
    return _find(session, job_id)

"""What the database says about the installation now: the facts ``/readyz`` and ``/metrics``
read (schema, worker heartbeats, builds by status, queue depth, store space).

Every value comes from the database, never from a process's memory: with web and workers on
several hosts the database is the only place that sees them all. Ages are computed by the
database's clock (``clock_timestamp() - last_heartbeat``), so clocks of other hosts do not
matter.

The synchronous functions take a connection and work inside it; :class:`StatusReader` is the
web process's asyncio entry point, with its own small pool and short timeouts so a slow or
unreachable database makes a probe fail fast instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from appliance.db.engine import connection_failed, create_async_engine
from appliance.db.errors import DatabaseError, DatabaseUnavailable
from appliance.db.models import Build, StorageSample
from appliance.db.schema import SchemaStatus, schema_status

_Result = TypeVar("_Result")

#: Seconds to wait for a connection, and for any one statement, before a probe gives up.
PROBE_TIMEOUT = 5.0
#: Storage samples older than this (seconds) are not reported (the host is gone or stopped).
STORAGE_SAMPLE_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class WorkerHeartbeat:
    """A worker process registered in the queue (``procrastinate_workers``)."""

    worker_id: int
    last_heartbeat: datetime
    #: Seconds since ``last_heartbeat``, by the database's clock.
    age_seconds: float


@dataclass(frozen=True)
class StoreSample:
    """The newest disk-space sample of one host's store directory."""

    host: str
    path: str
    sampled_on: datetime
    age_seconds: float
    disk_total: int
    disk_used: int
    disk_free: int
    store_size: int | None


@dataclass(frozen=True)
class ReadinessFacts:
    """What ``/readyz`` decides on: the schema and, when the queue's tables exist, the
    workers (None: the queue schema is missing, so there is nothing to ask)."""

    schema: SchemaStatus
    workers: list[WorkerHeartbeat] | None


@dataclass(frozen=True)
class InstallationStatus:
    """What ``/metrics`` reports from the database."""

    builds: dict[str, int] = field(default_factory=dict)
    #: Jobs by (queue name, status).
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    workers: list[WorkerHeartbeat] = field(default_factory=list)
    storage: list[StoreSample] = field(default_factory=list)


def worker_heartbeats(connection: Connection) -> list[WorkerHeartbeat]:
    """Every worker the queue knows, most recently heard from first."""
    rows = connection.execute(
        text(
            "SELECT id, last_heartbeat, "
            "greatest(extract(epoch FROM clock_timestamp() - last_heartbeat), 0) AS age "
            "FROM procrastinate_workers ORDER BY last_heartbeat DESC, id"
        )
    )
    return [WorkerHeartbeat(int(row.id), row.last_heartbeat, float(row.age)) for row in rows]


def builds_by_status(connection: Connection) -> dict[str, int]:
    """Number of builds (not deleted) in each status that has any."""
    rows = connection.execute(
        select(Build.status, func.count()).where(Build.deleted_on.is_(None)).group_by(Build.status)
    )
    return {str(status): int(count) for status, count in rows.tuples()}


def jobs_by_status(connection: Connection) -> dict[tuple[str, str], int]:
    """Number of jobs per (queue, status) that has any."""
    rows = connection.execute(
        text(
            "SELECT queue_name, status::text AS status, count(*) AS jobs "
            "FROM procrastinate_jobs GROUP BY queue_name, status"
        )
    )
    return {(str(row.queue_name), str(row.status)): int(row.jobs) for row in rows}


def latest_storage_samples(
    connection: Connection, *, max_age: float = STORAGE_SAMPLE_MAX_AGE
) -> list[StoreSample]:
    """The newest sample of each (host, path) taken within ``max_age`` seconds."""
    age = func.greatest(func.extract("epoch", func.clock_timestamp() - StorageSample.sampled_on), 0)
    rows = connection.execute(
        select(
            StorageSample.host,
            StorageSample.path,
            StorageSample.sampled_on,
            age.label("age"),
            StorageSample.disk_total,
            StorageSample.disk_used,
            StorageSample.disk_free,
            StorageSample.store_size,
        )
        .where(StorageSample.sampled_on >= func.clock_timestamp() - timedelta(seconds=max_age))
        .order_by(StorageSample.host, StorageSample.path, StorageSample.sampled_on.desc())
        .distinct(StorageSample.host, StorageSample.path)
    )
    return [
        StoreSample(
            host=row.host,
            path=row.path,
            sampled_on=row.sampled_on,
            age_seconds=float(row.age),
            disk_total=row.disk_total,
            disk_used=row.disk_used,
            disk_free=row.disk_free,
            store_size=row.store_size,
        )
        for row in rows
    ]


def readiness_facts(connection: Connection) -> ReadinessFacts:
    """The schema's state and, when the queue's tables exist, the workers' heartbeats."""
    schema = schema_status(connection)
    workers = worker_heartbeats(connection) if schema.queue_schema_present else None
    return ReadinessFacts(schema=schema, workers=workers)


def installation_status(connection: Connection) -> InstallationStatus:
    """Builds, jobs, workers and storage samples, read in one transaction."""
    return InstallationStatus(
        builds=builds_by_status(connection),
        jobs=jobs_by_status(connection),
        workers=worker_heartbeats(connection),
        storage=latest_storage_samples(connection),
    )


class StatusReader:
    """Reads :func:`readiness_facts` and :func:`installation_status` for an asyncio process.

    Owns a small connection pool on ``url`` (connections are opened on first use, so making a
    reader never fails). Every read raises :class:`~appliance.db.errors.DatabaseUnavailable`
    when the database cannot be reached or does not answer within ``timeout`` seconds, and
    :class:`~appliance.db.errors.DatabaseError` for anything else the database refuses (e.g.
    :meth:`installation_status` on a database without Kiln's tables).
    """

    def __init__(
        self,
        url: str,
        *,
        application_name: str = "kiln-web",
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        milliseconds = max(int(timeout * 1000), 1)
        self._engine = create_async_engine(
            url,
            application_name=application_name,
            pool_size=2,
            max_overflow=2,
            pool_timeout=timeout,
            connect_args={
                "connect_timeout": max(int(timeout), 1),
                "options": f"-c statement_timeout={milliseconds} "
                f"-c lock_timeout={milliseconds} "
                f"-c idle_in_transaction_session_timeout={milliseconds * 4}",
            },
        )

    async def readiness_facts(self) -> ReadinessFacts:
        return await self._read(readiness_facts)

    async def installation_status(self) -> InstallationStatus:
        return await self._read(installation_status)

    async def close(self) -> None:
        """Close the pool's connections (the reader must not be used afterwards)."""
        await self._engine.dispose()

    async def _read(self, work: Callable[[Connection], _Result]) -> _Result:
        try:
            async with self._engine.connect() as connection:
                return await connection.run_sync(work)
        except OperationalError as error:
            # Refused, lost and timed-out connections, and statements cut by the timeout.
            raise connection_failed(self._engine.url, error) from None
        except DBAPIError as error:
            reason = str(error.orig if error.orig is not None else error).strip()
            raise DatabaseError(f"the database refused a status query: {reason}") from None
        except SQLAlchemyError as error:  # e.g. no pooled connection free within the timeout
            raise DatabaseUnavailable(f"cannot read the database's status: {error}") from None

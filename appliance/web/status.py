"""Where the web app's probes and scrapes get their facts: the database, through
:class:`~appliance.db.status.StatusReader`, or a fake in tests (anything with the methods of
:class:`StatusSource`)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from pathlib import Path
from typing import Protocol

from appliance.common.errors import DatabaseError
from appliance.db.status import InstallationStatus, ReadinessFacts
from appliance.observability.cluster import ClusterSnapshot, StoreUsage, WorkerHeartbeat
from appliance.queue.tasks import QUEUES

logger = logging.getLogger("kiln.web")


class StatusSource(Protocol):
    """The database's view of the installation (see :mod:`appliance.db.status`).

    Both reads raise :class:`~appliance.common.errors.DatabaseError` (``DatabaseUnavailable``
    when it cannot be reached in time).
    """

    async def readiness_facts(self) -> ReadinessFacts: ...

    async def installation_status(self) -> InstallationStatus: ...

    async def close(self) -> None: ...


async def cluster_snapshot(
    source: StatusSource,
    *,
    worker_timeout: float,
    store_directory: str | None,
    timeout: float,
) -> ClusterSnapshot:
    """One scrape's view: the database's facts (or ``database_up=False`` when it cannot be
    read within ``timeout`` seconds), and store space from the workers' samples, or measured
    here when no sample covers this host's store."""
    try:
        status = await asyncio.wait_for(source.installation_status(), timeout)
    except (DatabaseError, TimeoutError) as error:
        reason = error.message if isinstance(error, DatabaseError) else "timed out"
        logger.warning("/metrics without the database's values: %s", reason)
        return ClusterSnapshot(
            database_up=False,
            worker_timeout=worker_timeout,
            stores=_local_store(store_directory, []),
        )
    stores = [
        StoreUsage(
            host=sample.host,
            path=sample.path,
            total=sample.disk_total,
            used=sample.disk_used,
            free=sample.disk_free,
            store_size=sample.store_size,
            age_seconds=sample.age_seconds,
        )
        for sample in status.storage
    ]
    return ClusterSnapshot(
        database_up=True,
        builds=status.builds,
        jobs=status.jobs,
        queues=QUEUES,
        workers=[
            WorkerHeartbeat(worker=str(worker.worker_id), age_seconds=worker.age_seconds)
            for worker in status.workers
        ],
        worker_timeout=worker_timeout,
        stores=[*stores, *_local_store(store_directory, stores)],
    )


def _local_store(store_directory: str | None, sampled: list[StoreUsage]) -> list[StoreUsage]:
    """This host's store space, measured now, unless a sample covers it or it is not here."""
    if store_directory is None:
        return []
    host = socket.gethostname()
    if any(store.host == host and store.path == store_directory for store in sampled):
        return []
    try:
        usage = shutil.disk_usage(Path(store_directory))
    except OSError:  # not on this host (web and workers on different machines), or unreadable
        return []
    return [
        StoreUsage(
            host=host, path=store_directory, total=usage.total, used=usage.used, free=usage.free
        )
    ]

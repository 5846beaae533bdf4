"""The Procrastinate application Kiln's workers run and the settings that keep jobs prompt."""

from __future__ import annotations

from dataclasses import dataclass

import procrastinate


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker takes jobs (``CondaStoreWorker`` options plus Kiln's fixed choices)."""

    concurrency: int = 4
    #: Seconds between polls for jobs. A NOTIFY that lands while a worker is fetching is lost,
    #: so without polling some jobs would wait for the next one (NOTES.md); keep it short.
    fetch_job_polling_interval: float = 0.5
    #: Seconds between checks for jobs asked to abort (cancel): a cancel takes effect this fast.
    abort_job_polling_interval: float = 1.0
    #: Seconds between heartbeats; a worker silent for ``stalled_worker_timeout`` is stalled.
    update_heartbeat_interval: float = 2.0
    stalled_worker_timeout: float = 10.0
    #: Seconds running builds get to finish when the worker is asked to stop.
    shutdown_graceful_timeout: float = 600.0


def make_app(conninfo: str, *, pool_size: int = 4) -> procrastinate.App:
    """A Procrastinate app on the database at ``conninfo`` (libpq form); tasks are added by the
    worker that runs it. ``autocommit`` must not be forced (it breaks LISTEN; NOTES.md)."""
    connector = procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=pool_size)
    return procrastinate.App(connector=connector)

"""One worker process: check the schema, open the queue, run jobs until asked to stop.

SIGTERM or SIGINT stops taking jobs and gives running builds
``WorkerSettings.shutdown_graceful_timeout`` seconds to finish (Procrastinate's graceful stop);
builds still running then are aborted and left for stalled-job recovery.
"""

from __future__ import annotations

import logging
import os
import socket

from appliance.builder.pipeline import Builder
from appliance.builder.settings import BuildSettings
from appliance.builder.solve import repodata_gateway
from appliance.config.platforms import current_platform
from appliance.db.engine import create_engine, display_url
from appliance.db.schema import check_schema
from appliance.queue.app import WorkerSettings, make_app
from appliance.queue.tasks import QUEUES
from appliance.services.transactions import Transactions
from appliance.storage.base import Storage
from appliance.worker.tasks import WorkerContext, register_tasks

logger = logging.getLogger("kiln.worker")


def worker_name() -> str:
    """``host:pid``: how builds and logs name this worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def run_worker(
    *,
    database_url: str,
    conninfo: str,
    build_settings: BuildSettings,
    storage: Storage,
    settings: WorkerSettings,
    wait: bool = True,
) -> None:
    """Run jobs until stopped (``wait``) or until the queue is empty (``wait=False``, tests).

    Raises :class:`~appliance.db.errors.SchemaMismatch` (run ``kiln migrate``) or
    :class:`~appliance.db.errors.DatabaseUnavailable` before taking any job.
    """
    engine = create_engine(database_url, application_name="kiln-worker")
    try:
        check_schema(engine)
        storage.check()
        context = WorkerContext(
            transactions=Transactions(engine),
            builder=Builder(
                build_settings, storage, repodata_gateway(build_settings.repodata_cache)
            ),
            name=worker_name(),
            platform=current_platform(),
        )
        app = make_app(conninfo, pool_size=settings.concurrency + 2)
        register_tasks(app, context)
        logger.info(
            "worker %s on %s: %d builds at a time",
            context.name, display_url(database_url), settings.concurrency,
        )  # fmt: skip
        async with app.open_async():
            await app.run_worker_async(
                queues=list(QUEUES),
                name=context.name,
                concurrency=settings.concurrency,
                wait=wait,
                fetch_job_polling_interval=settings.fetch_job_polling_interval,
                abort_job_polling_interval=settings.abort_job_polling_interval,
                update_heartbeat_interval=settings.update_heartbeat_interval,
                stalled_worker_timeout=settings.stalled_worker_timeout,
                shutdown_graceful_timeout=settings.shutdown_graceful_timeout,
                install_signal_handlers=wait,
            )
    finally:
        engine.dispose()

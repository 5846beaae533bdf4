"""One worker process: check the schema, open the queue, run jobs until asked to stop.

A worker process runs two pools of jobs side by side, each a Procrastinate worker with its own
heartbeat: builds (``CondaStoreWorker.concurrency`` at a time, queue ``builds``) and upkeep
(deletions, recovery, channel refresh, watch, storage samples; a few at a time, queue
``upkeep`` and this host's queue), so that long builds never delay a deletion or the recovery
of a dead worker's builds.

Start: interrupted builds are recovered at once (see :mod:`appliance.worker.recovery`), then,
for a long-running worker, the start-up upkeep jobs are queued and the periodic ones scheduled.

Stop (SIGTERM or SIGINT, or ``stop`` set): no new job is taken, and running builds get
``WorkerSettings.shutdown_graceful_timeout`` seconds to finish (Procrastinate's graceful stop).
Builds still running then are stopped and queued again for the next worker; the process then
exits normally. A pool that stops by itself (its database connection failed for good) stops the
process with an error, for the supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from typing import Any

import procrastinate

from appliance.builder.pipeline import Builder
from appliance.builder.settings import BuildSettings
from appliance.builder.solve import repodata_gateway
from appliance.common.errors import KilnError
from appliance.config.platforms import current_platform
from appliance.db.engine import create_engine, display_url
from appliance.db.schema import check_schema
from appliance.queue.app import WorkerSettings, make_app
from appliance.queue.tasks import BUILDS_QUEUE, UPKEEP_QUEUE, host_queue
from appliance.services.transactions import Transactions
from appliance.storage.base import Storage
from appliance.worker.context import WorkerContext
from appliance.worker.recovery import recover_interrupted
from appliance.worker.settings import UpkeepSettings
from appliance.worker.tasks import defer_start_jobs, register_tasks

logger = logging.getLogger("kiln.worker")


class WorkerStopped(KilnError):
    """A pool of this worker stopped by itself (see the log for why); the worker exits so that
    it can be restarted."""

    code = "worker_stopped"


class QuietAbortedJobs(logging.Filter):
    """Drops the traceback Procrastinate logs with every aborted job: an abort is a cancel or a
    stop, not an error, and the build's status already says what happened. Install it on the
    ``procrastinate.worker`` logger (the ``kiln worker`` command does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "action", None) in ("job_aborted", "job_aborted_retry"):
            record.exc_info = None
            record.exc_text = None
        return True


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
    upkeep: UpkeepSettings | None = None,
    wait: bool = True,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
) -> None:
    """Run jobs until stopped (``wait``) or until the queues are empty (``wait=False``).

    ``stop``, when given, stops the worker gracefully once set; ``handle_signals`` makes
    SIGTERM and SIGINT set it (the ``kiln worker`` command). Raises
    :class:`~appliance.db.errors.SchemaMismatch` (run ``kiln migrate``) or
    :class:`~appliance.db.errors.DatabaseUnavailable` before taking any job, and
    :class:`WorkerStopped` when a pool stopped without being asked to.
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
            upkeep=upkeep or UpkeepSettings(),
            stalled_after=settings.stalled_worker_timeout,
        )
        pool_size = settings.concurrency + context.upkeep.concurrency + 4
        app = make_app(conninfo, pool_size=pool_size)
        register_tasks(app, context, periodic=wait)
        logger.info(
            "worker %s on %s: %d builds at a time",
            context.name, display_url(database_url), settings.concurrency,
        )  # fmt: skip
        stop = stop or asyncio.Event()
        signals = _stop_on_signals(stop, settings) if handle_signals else contextlib.nullcontext()
        with signals:
            async with app.open_async():
                await recover_interrupted(context, app.job_manager)
                if wait:
                    await defer_start_jobs(app, context)
                await _run_pools(app, context, settings, wait=wait, stop=stop)
    finally:
        engine.dispose()


async def _run_pools(
    app: procrastinate.App,
    context: WorkerContext,
    settings: WorkerSettings,
    *,
    wait: bool,
    stop: asyncio.Event,
) -> None:
    common: dict[str, Any] = {
        "name": context.name,
        "wait": wait,
        "fetch_job_polling_interval": settings.fetch_job_polling_interval,
        "abort_job_polling_interval": settings.abort_job_polling_interval,
        "update_heartbeat_interval": settings.update_heartbeat_interval,
        "stalled_worker_timeout": settings.stalled_worker_timeout,
        "shutdown_graceful_timeout": settings.shutdown_graceful_timeout,
        "install_signal_handlers": False,
    }
    pools = [
        asyncio.create_task(
            app.run_worker_async(queues=[BUILDS_QUEUE], concurrency=settings.concurrency, **common),
            name="kiln builds",
        ),
        asyncio.create_task(
            app.run_worker_async(
                queues=[UPKEEP_QUEUE, host_queue(context.host)],
                concurrency=context.upkeep.concurrency,
                delete_jobs="successful",
                **common,
            ),
            name="kiln upkeep",
        ),
    ]
    stopping = asyncio.create_task(stop.wait(), name="kiln stop request")
    try:
        running = set(pools)
        while running:
            done, _ = await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                break
            running -= done
            for pool in done:
                if pool.exception() is not None:
                    raise WorkerStopped(
                        f"{pool.get_name()} failed: {pool.exception()}"
                    ) from pool.exception()
                if wait:
                    raise WorkerStopped(f"{pool.get_name()} stopped by itself")
            # Draining (``wait=False``): a pool ends once its queues are empty.
    finally:
        stopping.cancel()
        for pool in pools:
            pool.cancel()  # Procrastinate's graceful stop: running jobs get their time
        for pool, outcome in zip(
            pools, await asyncio.gather(*pools, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, Exception) and not isinstance(outcome, asyncio.CancelledError):
                logger.error("%s failed: %s", pool.get_name(), outcome)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, settings: WorkerSettings) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while the block runs."""
    loop = asyncio.get_running_loop()

    def request_stop(name: str) -> None:
        if stop.is_set():
            logger.info("%s: already stopping; waiting for running builds", name)
            return
        logger.info(
            "%s: stopping; running builds get up to %gs to finish",
            name, settings.shutdown_graceful_timeout,
        )  # fmt: skip
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, request_stop, number.name)
    try:
        yield
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(number)

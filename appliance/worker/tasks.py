"""Kiln's job implementations, registered on the Procrastinate app a worker runs.

Each task is a thin adapter from the queue's arguments to a function of this package; database
work happens in short transactions on a thread (the services are synchronous), never across the
build itself: a build takes minutes and must not hold locks or connections.

Periodic jobs (recovery every 5 s, channel refresh every 15 min, ``watch_paths`` and storage
samples every minute) carry a Procrastinate lock and queueing lock named after the task, so one
runs at a time across all workers and at most one waits. A worker also defers the channel
refresh when it starts (:func:`defer_start_jobs`); the every-minute jobs run at start anyway.
"""

from __future__ import annotations

import logging

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from appliance.common.errors import StorageError
from appliance.queue.tasks import (
    BUILD,
    COLLECT_IMAGE_BLOBS,
    DELETE_BUILD,
    DELETE_ENVIRONMENT,
    DELETE_NAMESPACE,
    PRUNE_JOBS,
    RECOVER_BUILDS,
    REFRESH_CHANNELS,
    SAMPLE_STORAGE,
    UPDATE_ENVIRONMENT,
    WATCH_PATHS,
    host_queue,
)
from appliance.worker import deletion, upkeep
from appliance.worker.building import BuildJob, StopReason, run_build
from appliance.worker.context import WorkerContext
from appliance.worker.environments import point_at_current_build
from appliance.worker.recovery import recover_interrupted
from appliance.worker.settings import (
    COLLECT_IMAGE_BLOBS_SCHEDULE,
    PRUNE_JOBS_SCHEDULE,
    RECOVER_SCHEDULE,
    REFRESH_CHANNELS_SCHEDULE,
    SAMPLE_STORAGE_SCHEDULE,
    WATCH_PATHS_SCHEDULE,
)

__all__ = ["WorkerContext", "defer_start_jobs", "register_tasks"]

logger = logging.getLogger("kiln.worker")

#: Deletions wait for canceled builds to stop (usually within a second), and ride out a
#: storage outage: tried again every 2 s for up to 10 minutes.
DELETION_RETRY = procrastinate.RetryStrategy(
    max_attempts=300, wait=2, retry_exceptions={deletion.RetryLater, StorageError}
)


def _build_job(context: procrastinate.JobContext, attempt: int) -> BuildJob:
    def stop_reason() -> StopReason | None:
        reason = context.abort_reason()
        if reason is None:
            return None
        if reason == procrastinate.job_context.AbortReason.USER_REQUEST:
            return StopReason.CANCELED
        return StopReason.SHUTDOWN

    return BuildJob(
        job_id=context.job.id,
        worker_id=context.job.worker_id,
        attempt=attempt,
        stop_reason=stop_reason,
    )


def sample_storage_lock(host: str) -> str:
    """Lock (and queueing lock) of one host's storage samples."""
    return f"{SAMPLE_STORAGE.name}@{host}"


def register_tasks(
    app: procrastinate.App, worker: WorkerContext, *, periodic: bool = False
) -> None:
    """Add Kiln's job implementations to ``app``; with ``periodic``, also schedule the periodic
    ones (long-running workers; a ``--burst`` worker only drains what is queued)."""

    @app.task(name=BUILD.name, queue=BUILD.queue, pass_context=True)
    async def build(context: procrastinate.JobContext, build_id: int, attempt: int = 1) -> None:
        await run_build(worker, build_id, _build_job(context, attempt))

    @app.task(name=DELETE_BUILD.name, queue=DELETE_BUILD.queue, retry=DELETION_RETRY)
    async def delete_build(build_id: int) -> None:
        await deletion.remove_deleted_build(worker, build_id)

    @app.task(name=DELETE_ENVIRONMENT.name, queue=DELETE_ENVIRONMENT.queue, retry=DELETION_RETRY)
    async def delete_environment(environment_id: int) -> None:
        await deletion.remove_deleted_environment(worker, environment_id)

    @app.task(name=DELETE_NAMESPACE.name, queue=DELETE_NAMESPACE.queue, retry=DELETION_RETRY)
    async def delete_namespace(namespace_id: int) -> None:
        await deletion.remove_deleted_namespace(worker, namespace_id)

    @app.task(name=UPDATE_ENVIRONMENT.name, queue=UPDATE_ENVIRONMENT.queue)
    async def update_environment(environment_id: int) -> None:
        await point_at_current_build(worker, environment_id)

    @app.task(
        name=RECOVER_BUILDS.name,
        queue=RECOVER_BUILDS.queue,
        pass_context=True,
        lock=RECOVER_BUILDS.name,
        queueing_lock=RECOVER_BUILDS.name,
    )
    async def recover_builds(context: procrastinate.JobContext, timestamp: int = 0) -> None:
        await recover_interrupted(worker, context.app.job_manager)

    @app.task(
        name=REFRESH_CHANNELS.name,
        queue=REFRESH_CHANNELS.queue,
        lock=REFRESH_CHANNELS.name,
        queueing_lock=REFRESH_CHANNELS.name,
    )
    async def refresh_channels(timestamp: int = 0) -> None:
        await upkeep.refresh_channels(worker)

    @app.task(
        name=WATCH_PATHS.name,
        queue=WATCH_PATHS.queue,
        lock=WATCH_PATHS.name,
        queueing_lock=WATCH_PATHS.name,
    )
    async def watch_paths(timestamp: int = 0) -> None:
        await upkeep.watch_paths(worker)

    @app.task(
        name=SAMPLE_STORAGE.name,
        queue=host_queue(worker.host),
        lock=sample_storage_lock(worker.host),
        queueing_lock=sample_storage_lock(worker.host),
    )
    async def sample_storage(timestamp: int = 0) -> None:
        await upkeep.sample_storage(worker)

    @app.task(
        name=COLLECT_IMAGE_BLOBS.name,
        queue=COLLECT_IMAGE_BLOBS.queue,
        lock=COLLECT_IMAGE_BLOBS.name,
        queueing_lock=COLLECT_IMAGE_BLOBS.name,
    )
    async def collect_image_blobs(timestamp: int = 0) -> None:
        await deletion.collect_image_blobs(worker)

    @app.task(
        name=PRUNE_JOBS.name,
        queue=PRUNE_JOBS.queue,
        lock=PRUNE_JOBS.name,
        queueing_lock=PRUNE_JOBS.name,
    )
    async def prune_jobs(timestamp: int = 0) -> None:
        await upkeep.prune_jobs(app.job_manager, worker.upkeep.job_retention_hours)

    if not periodic:
        return
    app.periodic(cron=RECOVER_SCHEDULE)(recover_builds)
    app.periodic(cron=COLLECT_IMAGE_BLOBS_SCHEDULE)(collect_image_blobs)
    app.periodic(cron=PRUNE_JOBS_SCHEDULE)(prune_jobs)
    if worker.upkeep.indexed_channels:
        app.periodic(cron=REFRESH_CHANNELS_SCHEDULE)(refresh_channels)
    if worker.upkeep.watch_paths:
        app.periodic(cron=WATCH_PATHS_SCHEDULE)(watch_paths)
    app.periodic(cron=SAMPLE_STORAGE_SCHEDULE, periodic_id=worker.host)(sample_storage)


async def defer_start_jobs(app: procrastinate.App, worker: WorkerContext) -> None:
    """Queue the channel refresh a worker runs when it starts (when channels are indexed).

    The every-minute jobs need nothing here: at start, Procrastinate's periodic deferrer queues
    the latest tick of each schedule that is less than 10 minutes old, so ``watch_paths`` and
    the storage sample run at once by themselves; the refresh's latest tick may be older. One
    refresh already waiting (another worker just started) is enough.
    """
    if not worker.upkeep.indexed_channels:
        return
    try:
        await app.tasks[REFRESH_CHANNELS.name].defer_async()
    except AlreadyEnqueued:
        logger.debug("%s is already queued", REFRESH_CHANNELS.name)

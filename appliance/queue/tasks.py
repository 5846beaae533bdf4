"""Names and queues of Kiln's jobs: the contract between services (which defer) and workers.

Jobs carry ids, never objects: the worker reads the current state from the database, so a job
that runs late (or twice) sees what is true now.

Two queues keep long work from starving short work: ``builds`` (minutes each, as many at once as
``CondaStoreWorker.concurrency``) and ``upkeep`` (deletions, recovery of builds whose worker
died, channel refresh, ``watch_paths``; seconds each, served by a separate small pool in every
worker process). Storage samples go to a per-host queue (:func:`host_queue`), because each host
measures its own store directory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskName:
    """A job kind: its Procrastinate task name and the queue it runs on."""

    name: str
    queue: str


BUILDS_QUEUE = "builds"
UPKEEP_QUEUE = "upkeep"

#: Build an environment: ``{"build_id": int, "attempt": int}`` (``attempt`` is 1 when absent;
#: a build whose worker died is retried once, as attempt 2).
BUILD = TaskName("kiln.build", BUILDS_QUEUE)

#: Remove a deleted build's prefix and artifacts (except the kinds kept on deletion):
#: ``{"build_id": int}``.
DELETE_BUILD = TaskName("kiln.delete_build", UPKEEP_QUEUE)

#: Remove a deleted environment: every build's prefix and artifacts, its ``envs/`` link, then
#: the rows: ``{"environment_id": int}``.
DELETE_ENVIRONMENT = TaskName("kiln.delete_environment", UPKEEP_QUEUE)

#: Remove a deleted namespace: each of its environments, then the row: ``{"namespace_id": int}``.
DELETE_NAMESPACE = TaskName("kiln.delete_namespace", UPKEEP_QUEUE)

#: Point an environment's ``envs/<name>`` link at its current build (after the current build
#: was switched): ``{"environment_id": int}``. Runs under :func:`environment_lock`, so it never
#: overlaps the environment's deletion.
UPDATE_ENVIRONMENT = TaskName("kiln.update_environment", UPKEEP_QUEUE)

#: Find builds whose worker stopped responding (or whose job ended without them) and retry or
#: fail them; also retry or fail stalled upkeep jobs. Periodic.
RECOVER_BUILDS = TaskName("kiln.recover_builds", UPKEEP_QUEUE)

#: Read the repodata of ``CondaStore.conda_indexed_channels`` into the package tables. Periodic.
REFRESH_CHANNELS = TaskName("kiln.refresh_channels", UPKEEP_QUEUE)

#: Register the environment files under ``CondaStoreWorker.watch_paths``. Periodic.
WATCH_PATHS = TaskName("kiln.watch_paths", UPKEEP_QUEUE)

#: Record the disk usage of this host's store directory. Periodic, on :func:`host_queue`.
SAMPLE_STORAGE = TaskName("kiln.sample_storage", UPKEEP_QUEUE)

#: Remove image blobs no image refers to any more (after their grace period). Periodic, and
#: after every build deletion.
COLLECT_IMAGE_BLOBS = TaskName("kiln.collect_image_blobs", UPKEEP_QUEUE)

#: Delete finished jobs (succeeded, failed, cancelled, aborted) older than
#: ``CondaStoreWorker.job_retention_days``. Periodic (hourly).
PRUNE_JOBS = TaskName("kiln.prune_jobs", UPKEEP_QUEUE)

#: Queues a worker serves, in the order it takes jobs from them.
QUEUES = (BUILDS_QUEUE, UPKEEP_QUEUE)


def host_queue(host: str) -> str:
    """The queue only the workers of ``host`` serve (work about that host's own disks)."""
    return f"host:{host}"


def build_lock(build_id: int) -> str:
    """Procrastinate lock of a build's jobs: never two jobs on one build at once."""
    return f"build-{build_id}"


def environment_lock(environment_id: int) -> str:
    """Procrastinate lock of an environment's deletion job."""
    return f"environment-{environment_id}"


def namespace_lock(namespace_id: int) -> str:
    """Procrastinate lock of a namespace's deletion job."""
    return f"namespace-{namespace_id}"

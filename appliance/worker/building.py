"""Running one build job: mark it BUILDING, run the engine, record the outcome.

The job may be stopped from outside while the engine runs, as an ``asyncio.CancelledError``
raised at its current step (the engine then removes the partial prefix). Why it was stopped
decides what the build becomes:

- the user canceled it (the job was aborted on request): CANCELED, "canceled by request";
- the worker is stopping and its drain time ran out: QUEUED again with a new job that another
  worker (or this one, restarted) runs; the attempt is not counted against the build.

Outcomes are recorded only while the build is still this job's (see
:mod:`appliance.services.builds`), so a worker presumed dead that comes back cannot overwrite
what recovery decided meanwhile. Each outcome this job records (COMPLETED, FAILED, CANCELED) is
also counted in the worker's metrics, with the time the build took and each step's
(:func:`appliance.observability.metrics.observe_build`); a build queued again is not an
outcome.

A build queued again (retried after its worker died, or stopped with its worker) was waiting
with the reason in its status. Its next run keeps the log of the interrupted run and continues
it after a separator line, ``--- attempt 2 (previous attempt interrupted: <reason>) ---``, so
the log tells the whole story.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.builder.buildlog import StepTiming
from appliance.builder.pipeline import Builder
from appliance.common.errors import KilnError
from appliance.db.enums import BuildStatus
from appliance.observability.metrics import observe_build
from appliance.services import builds
from appliance.services.settings import effective_build_settings
from appliance.worker.context import WorkerContext
from appliance.worker.environments import point_at_current_build

logger = logging.getLogger("kiln.worker")


class StopReason(enum.Enum):
    """Why a running build job is being stopped."""

    CANCELED = "canceled"
    SHUTDOWN = "shutdown"


def _never_stopped() -> StopReason | None:
    return None


@dataclass(frozen=True)
class BuildJob:
    """The queue job running a build."""

    job_id: int | None = None
    worker_id: int | None = None
    #: 1 for the first attempt; 2 after recovery retried the build.
    attempt: int = 1
    #: Why the job is being stopped, asked when it is.
    stop_reason: Callable[[], StopReason | None] = field(default=_never_stopped)


async def run_build(worker: WorkerContext, build_id: int, job: BuildJob | None = None) -> None:
    """Build ``build_id`` for ``job`` (see the module docstring)."""
    job = job or BuildJob()
    transactions = worker.transactions
    steps: list[StepTiming] = []
    started = time.monotonic()
    try:
        assignment = await transactions.run(
            builds.start_build,
            build_id,
            worker_name=worker.name,
            platform=worker.platform,
            job_id=job.job_id,
            worker_id=job.worker_id,
        )
        if assignment is None:
            logger.info("build %d is no longer queued for this job; nothing to do", build_id)
            return
        started = time.monotonic()
        logger.info(
            "building %d (%s), attempt %d", build_id, assignment.request.build_key, job.attempt
        )
        # Still the reason it was queued with: set only when it was queued again.
        requeued = (await transactions.run(builds.build_state, build_id)).reason
        builder = await _builder_for(worker, assignment)
        result = await builder.build(
            assignment.request,
            command=f"kiln worker: build {build_id}",
            steps=steps,
            continues=_rerun_heading(job.attempt, requeued),
        )
    except asyncio.CancelledError:
        if await asyncio.shield(_stopped(worker, build_id, job)):
            _observe(BuildStatus.CANCELED, steps, started)
        raise
    except KilnError as error:
        logger.info("build %d failed: %s", build_id, error.message)
        if await transactions.run(builds.fail_build, build_id, error.message, job_id=job.job_id):
            _observe(BuildStatus.FAILED, steps, started)
        return
    note = f"completed on attempt {job.attempt}" if job.attempt > 1 else None
    recorded = await transactions.run(
        builds.complete_build, build_id, result, job_id=job.job_id, note=note
    )
    if recorded:
        logger.info("build %d completed", build_id)
        _observe(BuildStatus.COMPLETED, steps, started)
        # The build linked envs/<name> before its completion was committed; a switch that ran
        # in between may have moved the link since. Leave it where the database now says.
        try:
            await point_at_current_build(worker, assignment.environment_id)
        except (OSError, KilnError) as error:  # the build stays completed; the next switch fixes it
            logger.error("build %d completed, but its envs/ link was not updated: %s", build_id,
                         getattr(error, "message", error))  # fmt: skip
    else:
        logger.warning("build %d completed, but it had been handed to another job", build_id)


async def _builder_for(worker: WorkerContext, assignment: builds.BuildAssignment) -> Builder:
    """The worker's builder, with the settings stored for the build's environment applied
    (platforms, artifacts, solve time, permissions: appliance.services.settings)."""
    base = worker.builder.settings
    settings = await worker.transactions.run(
        effective_build_settings,
        base,
        assignment.request.namespace,
        assignment.request.specification.name,
    )
    if settings is base:
        return worker.builder
    return Builder(settings, worker.builder.storage, worker.builder.gateway)


def _rerun_heading(attempt: int, requeued: str | None) -> str | None:
    """The log separator of a run that follows an interrupted one (None: a first run)."""
    if requeued is None:
        return None
    return f"attempt {attempt} (previous attempt interrupted: {requeued})"


def _observe(status: BuildStatus, steps: list[StepTiming], started: float) -> None:
    """Count an outcome this job recorded in the metrics; a step run twice counts its total."""
    seconds: dict[str, float] = {}
    for step in steps:
        seconds[step.name] = seconds.get(step.name, 0.0) + step.seconds
    observe_build(status, seconds, time.monotonic() - started)


async def _stopped(worker: WorkerContext, build_id: int, job: BuildJob) -> bool:
    """Record why the build stopped; True when that was its end (CANCELED), False when it was
    queued again or had moved on."""
    reason = job.stop_reason()
    if reason == StopReason.CANCELED:
        logger.info("build %d canceled", build_id)
        return await worker.transactions.run(
            builds.cancel_build_record, build_id, "canceled by request", job_id=job.job_id
        )
    if job.job_id is None:
        return False
    logger.info("build %d stopped with the worker; queued again", build_id)
    await worker.transactions.run(
        builds.requeue_build,
        build_id,
        job_id=job.job_id,
        attempt=job.attempt,
        reason=f"queued again: the worker {worker.name} was stopped while building",
    )
    return False

"""What a worker does for each kind of job.

Database work happens in short transactions on a thread (the services are synchronous), never
across the build itself: a build takes minutes and must not hold locks or connections.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import procrastinate

from appliance.builder.pipeline import Builder
from appliance.common.errors import KilnError
from appliance.queue.tasks import BUILD
from appliance.services import builds
from appliance.services.transactions import Transactions

logger = logging.getLogger("kiln.worker")


@dataclass(frozen=True)
class WorkerContext:
    """What every job of one worker process shares."""

    transactions: Transactions
    builder: Builder
    #: ``host:pid``, recorded on the builds this worker runs.
    name: str
    platform: str


async def run_build(worker: WorkerContext, build_id: int) -> None:
    """Build ``build_id``: mark it BUILDING, run the engine, record the outcome."""
    assignment = await worker.transactions.run(
        builds.start_build, build_id, worker_name=worker.name, platform=worker.platform
    )
    if assignment is None:
        logger.info("build %d is no longer queued; nothing to do", build_id)
        return
    logger.info("building %d (%s)", build_id, assignment.request.build_key)
    try:
        result = await worker.builder.build(
            assignment.request, command=f"kiln worker: build {build_id}"
        )
    except asyncio.CancelledError:
        await asyncio.shield(
            worker.transactions.run(builds.cancel_build_record, build_id, "canceled while building")
        )
        raise
    except KilnError as error:
        logger.info("build %d failed: %s", build_id, error.message)
        await worker.transactions.run(builds.fail_build, build_id, error.message)
        return
    await worker.transactions.run(builds.complete_build, build_id, result)
    logger.info("build %d completed", build_id)


def register_tasks(app: procrastinate.App, worker: WorkerContext) -> None:
    """Add Kiln's job implementations to ``app``."""

    @app.task(name=BUILD.name, queue=BUILD.queue)
    async def build(build_id: int) -> None:
        await run_build(worker, build_id)

"""Recovering the builds and jobs of workers that stopped responding (the policy is in
:mod:`appliance.services.recovery`).

Runs when a worker starts (so restarting the only worker recovers what the previous process
left) and then every few seconds as a periodic job, one at a time across all workers. A build
whose worker was killed is therefore retried or failed within about
``stalled_worker_timeout`` + 5 seconds.
"""

from __future__ import annotations

import functools
import logging

from procrastinate.manager import JobManager

from appliance.common.errors import KilnError
from appliance.services import recovery
from appliance.services.recovery import RecoveredBuild
from appliance.worker.context import WorkerContext
from appliance.worker.files import clear_interrupted_build

logger = logging.getLogger("kiln.worker")


async def recover_interrupted(worker: WorkerContext, jobs: JobManager) -> list[RecoveredBuild]:
    """Retry, fail or cancel every interrupted build; retry or fail other stalled jobs."""
    stalled = await jobs.get_stalled_jobs(seconds_since_heartbeat=worker.stalled_after)
    stalled_ids = [job.id for job in stalled if job.id is not None]
    transactions = worker.transactions
    candidates = await transactions.run(
        recovery.find_interrupted_builds, stalled_job_ids=stalled_ids
    )
    remove_files = functools.partial(clear_interrupted_build, worker.settings)
    recovered = []
    for build_id in candidates:
        try:
            outcome = await transactions.run(
                recovery.recover_build,
                build_id,
                stalled_after=worker.stalled_after,
                remove_files=remove_files,
            )
        except KilnError as error:
            logger.error("cannot recover build %d: %s", build_id, error.message)
            continue
        if outcome is not None:
            logger.warning("build %d %s: %s", build_id, outcome.action, outcome.reason)
            recovered.append(outcome)
    if stalled_ids:
        for job in await transactions.run(
            recovery.recover_stalled_jobs, stalled_ids, stalled_after=worker.stalled_after
        ):
            verb = "retried" if job.retried else "marked failed"
            logger.warning("stalled job %d (%s) %s", job.job_id, job.task_name, verb)
    return recovered

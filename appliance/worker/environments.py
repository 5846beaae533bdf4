"""The file side of switching an environment's current build: its ``envs/<name>`` link.

``PUT /api/v1/environment/{ns}/{env}/`` with a ``build_id`` changes the current build in the
database (:func:`appliance.services.environments.update_environment`) and defers
``kiln.update_environment``; this job then moves the link. It reads the current build when it
runs, under the environment's link lock, as the build job does once a completion is committed,
so a job that runs late, twice, after another switch or alongside a build that completes leaves
the link on what the database says now. The move is one atomic ``rename`` of a symlink
(:func:`appliance.builder.activate.point_environment_at`): users of ``envs/<name>`` see the old
prefix or the new one, never nothing.

The job does nothing when there is nothing to point at: the environment was deleted meanwhile,
its current build is not a usable one, the build key version (3) has no link, or the prefix is
not on this host's store (the link would dangle; the reason is logged). A file system error
fails the job (it shows in the queue, with the error).
"""

from __future__ import annotations

import logging
from functools import partial

from appliance.builder.activate import point_environment_at
from appliance.common.errors import KilnError
from appliance.services import environments
from appliance.services.environments import CurrentBuild
from appliance.worker.context import WorkerContext

logger = logging.getLogger("kiln.worker")


async def point_at_current_build(worker: WorkerContext, environment_id: int) -> None:
    """Make the ``envs/<name>`` link of ``environment_id`` point at its current build, reading
    the current build and moving the link under the environment's link lock
    (:func:`appliance.services.environments.with_current_build`)."""
    await worker.transactions.run(
        environments.with_current_build, environment_id, partial(_point, worker, environment_id)
    )


def _point(worker: WorkerContext, environment_id: int, current: CurrentBuild | None) -> None:
    if current is None:
        logger.info(
            "environment %d has no current build to link (deleted, or none usable); nothing to do",
            environment_id,
        )
        return
    settings = worker.settings
    link = settings.current_link(current.namespace, current.environment, current.key_version)
    if link is None:
        logger.info(
            "build %d of %s/%s has key version 3: there is no envs/ link to move",
            current.build_id, current.namespace, current.environment,
        )  # fmt: skip
        return
    prefix = settings.build_prefix(
        current.namespace, current.environment, current.build_key, current.key_version
    )
    if not prefix.is_dir():
        logger.error(
            "cannot point %s at build %d: its prefix %s is not on this host's store",
            link, current.build_id, prefix,
        )  # fmt: skip
        return
    try:
        point_environment_at(link, prefix)
    except KilnError as error:  # something that is not a link is in the way: an operator's job
        logger.error("cannot point %s at build %d: %s", link, current.build_id, error.message)
        return
    logger.info("%s -> %s (build %d)", link, prefix, current.build_id)

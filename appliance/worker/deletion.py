"""The file work of deleting builds, environments and namespaces (the rules are in
:mod:`appliance.services.builds`, the database side in :mod:`appliance.services.deletion`).

Files go first, rows last, and every step is idempotent, so a job that is retried (or that
runs again after its worker died) finishes what the previous run started.

Images are different: their blobs are shared (between builds with packages in common, and
between builds of the same lockfile, which have the very same manifest). Removing a build's
OCI_IMAGE drops its row only; then image garbage collection (:mod:`appliance.oci.collect`)
removes the blobs no recorded image and no imported base image refers to, the build's manifest
included, once they are older than ``Images.blob_grace_period``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from pathlib import Path

from appliance.builder.settings import DIRECTORY, OCI_IMAGE
from appliance.common.errors import KilnError, StorageError
from appliance.oci.collect import GarbageCollection, collect_garbage
from appliance.oci.layout import InvalidDigest, digest_of_key
from appliance.services import deletion
from appliance.services.deletion import BuildFiles, EnvironmentRemoval
from appliance.worker.context import WorkerContext
from appliance.worker.files import (
    OutsideStore,
    build_roots,
    environment_link,
    link_points_at,
    prefix_of,
    remove_link_to,
    remove_tree,
)

logger = logging.getLogger("kiln.worker")


class RetryLater(KilnError):
    """The deletion must wait (builds of the environment are still stopping); the job is
    retried a few seconds later."""

    code = "retry_later"


async def remove_deleted_build(worker: WorkerContext, build_id: int) -> None:
    """Remove a deleted build's prefix and artifacts, except the kept kinds."""
    files = await worker.transactions.run(deletion.deleted_build_files, build_id)
    if files is None:
        logger.info("build %d is not deleted (or is gone); nothing to remove", build_id)
        return
    removed = await asyncio.to_thread(
        _remove_build_files, worker, files, kept=worker.upkeep.kept_on_deletion
    )
    await worker.transactions.run(deletion.forget_build_files, build_id, removed)
    logger.info("removed build %d (%d artifacts)", build_id, len(removed))
    if _had_image(files, removed):
        await collect_image_blobs(worker)


def _had_image(files: BuildFiles, removed: Collection[int] | None = None) -> bool:
    return any(
        artifact.artifact_type == OCI_IMAGE and (removed is None or artifact.id in removed)
        for artifact in files.artifacts
    )


async def collect_image_blobs(worker: WorkerContext) -> GarbageCollection | None:
    """Remove the image blobs nothing refers to any more (after the rows are gone).

    Best effort: the deletion itself is done, so a storage failure here is logged, not
    raised (retrying the job would not run the collection again); the next collection
    removes what this one left.
    """
    keys = await worker.transactions.run(deletion.image_manifest_keys)
    manifests = []
    for key in keys:
        try:
            manifests.append(digest_of_key(key))
        except InvalidDigest:
            logger.warning("ignoring OCI_IMAGE artifact with a key that is not a blob: %s", key)
    try:
        return await asyncio.to_thread(
            collect_garbage, worker.storage, manifests, grace=worker.settings.image.grace
        )
    except StorageError as error:
        logger.warning("image garbage collection stopped: %s", error.message)
        return None


def _remove_build_files(
    worker: WorkerContext, files: BuildFiles, *, kept: Collection[str]
) -> list[int]:
    """Remove the artifacts of ``files`` whose type is not in ``kept`` and, unless
    ``DIRECTORY`` is kept, the prefix; returns the ids of the artifacts removed."""
    settings = worker.settings
    roots = build_roots(settings, files)
    link = environment_link(settings, files)
    prefix = prefix_of(settings, files)
    removed = []
    for artifact in files.artifacts:
        if artifact.artifact_type in kept:
            continue
        if artifact.artifact_type == DIRECTORY:
            path = Path(artifact.key)
            if link is not None and link_points_at(link, [path]):
                logger.warning("%s is current (%s points at it); not removed", path, link)
                continue
            try:
                remove_tree(path, roots=roots)
            except OutsideStore as error:
                logger.error("build %d: %s", files.build_id, error.message)
                continue
        elif artifact.artifact_type != OCI_IMAGE:  # shared blobs: garbage collection's job
            worker.storage.delete(artifact.key)
        removed.append(artifact.id)
    if DIRECTORY not in kept and (link is None or not link_points_at(link, [prefix])):
        remove_tree(prefix, roots=roots)
    return removed


async def remove_deleted_environment(worker: WorkerContext, environment_id: int) -> None:
    """Remove a deleted environment: its link, every build's files (kept kinds included),
    then its rows. Raises :class:`RetryLater` while its builds are still stopping."""
    removal = await worker.transactions.run(deletion.environment_removal, environment_id)
    if removal is None:
        logger.info("environment %d is not deleted (or is gone)", environment_id)
        return
    if removal.stopping:
        raise RetryLater(
            f"environment {removal.namespace}/{removal.name}: builds "
            f"{', '.join(map(str, removal.stopping))} are still stopping"
        )
    await asyncio.to_thread(_remove_environment_files, worker, removal)
    if not await worker.transactions.run(deletion.remove_environment_rows, environment_id):
        raise RetryLater(f"environment {removal.namespace}/{removal.name} changed; trying again")
    logger.info(
        "removed environment %s/%s (%d builds)",
        removal.namespace,
        removal.name,
        len(removal.builds),
    )
    if any(_had_image(files) for files in removal.builds):
        await collect_image_blobs(worker)


def _remove_environment_files(worker: WorkerContext, removal: EnvironmentRemoval) -> None:
    settings = worker.settings
    link = settings.environment_link(removal.namespace, removal.name)
    prefixes = [prefix_of(settings, files) for files in removal.builds]
    prefixes += [
        Path(a.key) for files in removal.builds for a in files.artifacts
        if a.artifact_type == DIRECTORY
    ]  # fmt: skip
    remove_link_to(link, prefixes)
    for files in removal.builds:
        _remove_build_files(worker, files, kept=())


async def remove_deleted_namespace(worker: WorkerContext, namespace_id: int) -> None:
    """Remove every environment of a deleted namespace, then the namespace's row."""
    environments = await worker.transactions.run(deletion.namespace_environments, namespace_id)
    if environments is None:
        logger.info("namespace %d is not deleted (or is gone)", namespace_id)
        return
    for environment_id in environments:
        await remove_deleted_environment(worker, environment_id)
    if not await worker.transactions.run(deletion.remove_namespace_row, namespace_id):
        raise RetryLater(f"namespace {namespace_id} still has environments; trying again")
    logger.info("removed namespace %d (%d environments)", namespace_id, len(environments))

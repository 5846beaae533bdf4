"""Periodic upkeep: the package index of the indexed channels, environments from watched
files, samples of the store's disk usage, and pruning the queue's finished jobs."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from procrastinate.manager import JobManager

from appliance.channels.repodata import fetch_subdir_index
from appliance.common.errors import KilnError, SpecificationError
from appliance.schemas.channels import normalize_channel
from appliance.schemas.specification import EnvironmentSpec, LockfileSpec, parse_specification
from appliance.services import channels, usage, watch
from appliance.worker.context import WorkerContext

logger = logging.getLogger("kiln.worker")

#: Package names read from repodata per step (each step's new files are one insert batch or a
#: few).
_NAMES_PER_STEP = 200

#: Suffixes of environment files in watched directories.
ENVIRONMENT_FILE_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class ChannelRefresh:
    """What one refresh of one channel did."""

    channel: str
    added: int
    #: Subdirs that could not be read, with the reason.
    problems: tuple[str, ...]


async def refresh_channels(worker: WorkerContext) -> list[ChannelRefresh]:
    """Add the new package files of every indexed channel to the package tables.

    A channel (or one of its subdirs) that cannot be read is logged and skipped; the others
    are still refreshed. Only a channel whose subdirs were all read is marked refreshed.
    """
    settings = worker.settings
    results = []
    for written in worker.upkeep.indexed_channels:
        try:
            url = normalize_channel(written, channel_alias=settings.channel_alias)
        except KilnError as error:
            logger.warning("indexed channel %r skipped: %s", written, error.message)
            continue
        results.append(await _refresh_channel(worker, url))
    return results


async def _refresh_channel(worker: WorkerContext, url: str) -> ChannelRefresh:
    transactions = worker.transactions
    cache = worker.settings.repodata_cache / "index"
    channel_id = await transactions.run(channels.ensure_channel, url)
    added = 0
    problems = []
    for subdir in worker.upkeep.index_platforms:
        try:
            index = await fetch_subdir_index(url, subdir, cache)
        except KilnError as error:
            logger.warning("channel refresh: %s", error.message)
            problems.append(error.message)
            continue
        known = await transactions.run(channels.known_filenames, channel_id, subdir)
        names = await asyncio.to_thread(index.package_names)
        for start in range(0, len(names), _NAMES_PER_STEP):
            packages = await asyncio.to_thread(
                index.packages, names[start : start + _NAMES_PER_STEP]
            )
            new = [p for p in packages if p.filename not in known]
            for batch in range(0, len(new), channels.BATCH_SIZE):
                added += await transactions.run(
                    channels.add_package_builds,
                    channel_id,
                    new[batch : batch + channels.BATCH_SIZE],
                )
    if not problems:
        await transactions.run(channels.mark_channel_refreshed, channel_id)
    logger.info("channel %s refreshed: %d new package files", url, added)
    return ChannelRefresh(url, added, tuple(problems))


def environment_files(paths: tuple[Path, ...]) -> list[Path]:
    """The environment files named by ``watch_paths``: files as given, and the ``*.yml`` and
    ``*.yaml`` files directly inside directories (sorted). Missing paths are logged."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                child for child in path.iterdir()
                if child.suffix in ENVIRONMENT_FILE_SUFFIXES and child.is_file()
            )  # fmt: skip
        else:
            logger.warning("watch path %s does not exist", path)
    return found


@dataclass(frozen=True)
class WatchedFile:
    """What one environment file gave: a build, nothing (unchanged), or a problem."""

    path: Path
    environment: str | None
    build_id: int | None
    submitted: bool
    problem: str | None = None


def _read_environment_file(path: Path, worker: WorkerContext) -> EnvironmentSpec | LockfileSpec:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SpecificationError(f"cannot read the file: {error.strerror or error}") from error
    return parse_specification(data, limits=worker.settings.limits)


async def watch_paths(worker: WorkerContext) -> list[WatchedFile]:
    """Register every watched environment file (see :mod:`appliance.services.watch`).

    An invalid file is logged with the reason and skipped; so is a file naming an environment
    another file (earlier in path order) already named.
    """
    outcomes = []
    claimed: dict[str, Path] = {}
    namespace = worker.upkeep.filesystem_namespace
    for path in await asyncio.to_thread(environment_files, worker.upkeep.watch_paths):
        try:
            spec = await asyncio.to_thread(_read_environment_file, path, worker)
            if spec.name in claimed:
                raise SpecificationError(
                    f"environment {spec.name!r} is already defined by {claimed[spec.name]}"
                )
            claimed[spec.name] = path
            registered = await worker.transactions.run(
                watch.register_watched_specification,
                spec,
                namespace=namespace,
                settings=worker.settings,
            )
        except KilnError as error:
            where = (
                f" (line {error.line})"
                if isinstance(error, SpecificationError) and error.line
                else ""
            )
            logger.warning("watched file %s%s skipped: %s", path, where, error.message)
            outcomes.append(WatchedFile(path, None, None, False, error.message))
            continue
        submitted = registered.outcome == watch.WatchOutcome.SUBMITTED
        if submitted:
            logger.info(
                "watched file %s: build %d of %s/%s queued",
                path, registered.build_id, namespace, registered.environment,
            )  # fmt: skip
        outcomes.append(WatchedFile(path, registered.environment, registered.build_id, submitted))
    return outcomes


async def sample_storage(worker: WorkerContext) -> None:
    """Record the disk usage of this host's store directory."""
    store = worker.settings.store_directory
    measured = store
    while not measured.exists() and measured != measured.parent:
        measured = measured.parent
    disk = await asyncio.to_thread(shutil.disk_usage, measured)
    await worker.transactions.run(
        usage.record_storage_sample,
        host=worker.host,
        path=str(store),
        total=disk.total,
        used=disk.used,
        free=disk.free,
    )


async def prune_jobs(jobs: JobManager, retention_hours: int) -> None:
    """Delete the queue's finished jobs (and their events) older than ``retention_hours``:
    succeeded, failed, cancelled and aborted ones; waiting and running jobs are never touched."""
    await jobs.delete_old_jobs(
        nb_hours=retention_hours,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )
    logger.info("deleted the queue's finished jobs older than %d hours", retention_hours)

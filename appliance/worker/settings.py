"""What a worker needs besides the build engine's settings: deletion, index and watch options,
and the schedules of its periodic jobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.config.loader import KilnConfig
from appliance.config.platforms import current_platform

#: Cron schedules (Procrastinate periodic tasks; a sixth field is seconds).
RECOVER_SCHEDULE = "* * * * * */5"
REFRESH_CHANNELS_SCHEDULE = "*/15 * * * *"
WATCH_PATHS_SCHEDULE = "* * * * *"
SAMPLE_STORAGE_SCHEDULE = "* * * * *"
#: Hourly, so blobs still within their grace period at a deletion are not kept for good.
COLLECT_IMAGE_BLOBS_SCHEDULE = "17 * * * *"
#: Hourly: the recovery job alone finishes ~17,000 jobs a day.
PRUNE_JOBS_SCHEDULE = "41 * * * *"


@dataclass(frozen=True)
class UpkeepSettings:
    """The worker's options outside the build engine (``CondaStore`` and ``CondaStoreWorker``)."""

    #: Artifact types a deleted build keeps (``CondaStore.build_artifacts_kept_on_deletion``).
    kept_on_deletion: frozenset[str] = frozenset({"LOGS", "LOCKFILE", "YAML"})
    #: Channels whose repodata fills the package tables (``CondaStore.conda_indexed_channels``,
    #: as written; normalized with the engine's channel alias).
    indexed_channels: tuple[str, ...] = ()
    #: Subdirs read from each indexed channel (``CondaStore.conda_platforms``).
    index_platforms: tuple[str, ...] = (current_platform(), "noarch")
    #: Environment files and directories of them (``CondaStoreWorker.watch_paths``).
    watch_paths: tuple[Path, ...] = ()
    #: Namespace of the watched environments (``CondaStore.filesystem_namespace``).
    filesystem_namespace: str = "filesystem"
    #: Upkeep jobs (deletions, recovery, refresh, watch) one worker process runs at once, next
    #: to and independent of its builds.
    concurrency: int = 2
    #: Finished jobs are kept this long (``CondaStoreWorker.job_retention_days``), in hours.
    job_retention_hours: int = 7 * 24


def upkeep_from_config(config: KilnConfig) -> UpkeepSettings:
    """The worker's view of a loaded configuration."""
    store = config.conda_store
    return UpkeepSettings(
        kept_on_deletion=frozenset(str(kind) for kind in store.build_artifacts_kept_on_deletion),
        indexed_channels=tuple(store.conda_indexed_channels),
        index_platforms=tuple(dict.fromkeys(store.conda_platforms)),
        watch_paths=tuple(Path(path) for path in config.worker.watch_paths),
        filesystem_namespace=store.filesystem_namespace,
        job_retention_hours=config.worker.job_retention_days * 24,
    )

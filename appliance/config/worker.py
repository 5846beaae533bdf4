"""``CondaStoreWorker``: the build worker process."""

from __future__ import annotations

import os

from traitlets import Integer, List

from appliance.config.base import (
    DEFAULT_TEXT,
    DataDirPath,
    KilnConfigurable,
    LogLevel,
    obsolete_option,
)


class CondaStoreWorker(KilnConfigurable):
    """A worker (`kiln worker`, started by `kiln serve`): builds, artifacts, deletions, upkeep."""

    log_level = LogLevel(
        "INFO",
        help="""
        Log level of the worker: DEBUG, INFO, WARNING, ERROR, CRITICAL (or logging.INFO etc.).

        Example: c.CondaStoreWorker.log_level = "DEBUG"
        """,
    ).tag(config=True)

    watch_paths = List(
        DataDirPath(),
        [],
        help="""
        environment.yaml files or directories of them; each file becomes an environment in
        CondaStore.filesystem_namespace and is rebuilt when it changes (checked every minute).
        A relative path is taken relative to the data dir.

        Example: c.CondaStoreWorker.watch_paths = ["/srv/environments"]
        """,
    ).tag(config=True)

    concurrency = Integer(
        None,
        allow_none=True,
        min=1,
        help="""
        How many jobs (builds, artifact jobs, deletions) one worker runs at once. Unset means
        the number of CPUs, as with conda-store's Celery default. Solves can use several GB
        of memory each: lower it on small hosts.

        Example: c.CondaStoreWorker.concurrency = 2
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "None (the number of CPUs)"})

    job_retention_days = Integer(
        7,
        min=1,
        help="""
        How long finished jobs stay in the queue's tables (succeeded, failed, cancelled), in
        days; an hourly job deletes older ones. The admin API and console list and retry jobs
        within this window. Builds and their logs are not affected.

        Example: c.CondaStoreWorker.job_retention_days = 30
        """,
    ).tag(config=True)

    def effective_concurrency(self) -> int:
        """``concurrency``, or the number of CPUs when it is unset."""
        return self.concurrency or os.cpu_count() or 1

    config_file = obsolete_option(
        "pass --config FILE to kiln, or put kiln_config.py in the data dir",
        """
        conda-store's configuration file option. Ignored.

        Example: c.CondaStoreWorker.config_file = "conda_store_config.py"
        """,
    )

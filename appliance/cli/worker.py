"""``kiln worker``: run builds and upkeep jobs from the queue (one role of ``kiln serve``; scale
out with more).

Uses ``CondaStore.database_url`` (or the managed PostgreSQL that ``kiln serve`` runs in the data
dir), the configured store and artifact storage, ``CondaStoreWorker.concurrency`` and
``watch_paths``, and ``Supervisor.drain_timeout`` as the time running builds get to finish on
SIGTERM (``--drain-timeout`` overrides it; builds still running then are queued again).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln worker`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "worker",
        parents=[common],
        help="run builds and upkeep jobs from the queue",
        description="Take jobs from the queue and run them until stopped: builds, deletions, "
        "recovery of builds whose worker died, the package index of the indexed channels, "
        "watch_paths. SIGTERM lets running builds finish first. Several workers on several "
        "hosts may share one database.",
    )
    parser.add_argument(
        "--concurrency", type=int, metavar="N",
        help="builds at a time (default: CondaStoreWorker.concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--burst", action="store_true",
        help="run the jobs already queued, then exit (for scripts and tests)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=float, metavar="SECONDS",
        help="on SIGTERM, how long running builds may take to finish before they are stopped "
        "and queued again (default: Supervisor.drain_timeout)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.builder.settings import settings_from_config
    from appliance.cli.database import database_location
    from appliance.common.errors import ConfigurationError
    from appliance.config import load_config_from_args
    from appliance.queue.app import WorkerSettings
    from appliance.storage.factory import open_storage
    from appliance.worker.runner import QuietAbortedJobs, run_worker
    from appliance.worker.settings import upkeep_from_config

    logging.getLogger("procrastinate.worker").addFilter(QuietAbortedJobs())
    config = load_config_from_args(args)
    location = database_location(config)
    concurrency = args.concurrency or config.worker.concurrency or 4
    if concurrency < 1:
        raise ConfigurationError("--concurrency must be at least 1")
    drain_timeout = args.drain_timeout
    if drain_timeout is None:
        drain_timeout = config.supervisor.drain_timeout
    if drain_timeout < 0:
        raise ConfigurationError("--drain-timeout must not be negative")
    asyncio.run(
        run_worker(
            database_url=location.url,
            conninfo=location.conninfo,
            build_settings=settings_from_config(config),
            storage=open_storage(config.storage),
            settings=WorkerSettings(
                concurrency=concurrency, shutdown_graceful_timeout=drain_timeout
            ),
            upkeep=upkeep_from_config(config),
            wait=not args.burst,
            handle_signals=True,
        )
    )
    return 0

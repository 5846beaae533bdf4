"""``kiln worker``: run builds and upkeep jobs from the queue (one role of ``kiln serve``; scale
out with more).

Uses ``CondaStore.database_url`` (or the managed PostgreSQL that ``kiln serve`` runs in the data
dir), the configured store and artifact storage, ``CondaStoreWorker.concurrency`` and
``watch_paths``, and ``Supervisor.drain_timeout`` as the time running builds get to finish on
SIGTERM (``--drain-timeout`` overrides it; builds still running then are queued again).

A bad option value (``--concurrency`` below 1, a negative ``--drain-timeout``) is a usage error
(exit status 2), refused before the configuration is read or the database is reached. Builds
are counted in the metrics; with ``PROMETHEUS_MULTIPROC_DIR`` set (``kiln serve`` sets it), in
files there that ``/metrics`` on this host adds up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from appliance.cli.options import at_least, quiet_alembic


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
        "--concurrency", type=at_least(1, int), metavar="N",
        help="builds at a time, at least 1 (default: CondaStoreWorker.concurrency, else the "
        "number of CPUs)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-port", type=at_least(1, int), metavar="PORT",
        help="also serve this worker host's metrics at http://ADDRESS:PORT/metrics (for hosts "
        "without a web process; `kiln serve` hosts have the web's /metrics)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-address", default="127.0.0.1", metavar="ADDRESS",
        help="address --metrics-port listens on (default: 127.0.0.1)",
    )  # fmt: skip
    parser.add_argument(
        "--burst", action="store_true",
        help="run the jobs already queued, then exit (for scripts and tests)",
    )  # fmt: skip
    parser.add_argument(
        "--drain-timeout", type=at_least(0, float), metavar="SECONDS",
        help="on SIGTERM, how long running builds may take to finish before they are stopped "
        "and queued again (default: Supervisor.drain_timeout)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_alembic(args.log_level)
    _prepare_metrics_directory()
    # Imported only now: prometheus_client picks its storage when first imported.
    from appliance.builder.settings import settings_from_config
    from appliance.cli.database import database_location
    from appliance.config import load_config_from_args
    from appliance.queue.app import WorkerSettings
    from appliance.storage.factory import open_storage
    from appliance.worker.runner import QuietAbortedJobs, run_worker
    from appliance.worker.settings import upkeep_from_config

    logging.getLogger("procrastinate.worker").addFilter(QuietAbortedJobs())
    config = load_config_from_args(args)
    location = database_location(config)
    # Both were checked already: the options by their parser, the traits by their bounds.
    concurrency = args.concurrency or config.worker.effective_concurrency()
    drain_timeout = args.drain_timeout
    if drain_timeout is None:
        drain_timeout = config.supervisor.drain_timeout
    if args.metrics_port is not None:
        from appliance.observability.exposition import serve_process_metrics

        serve_process_metrics(args.metrics_address, args.metrics_port)
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


def _prepare_metrics_directory() -> None:
    """Create the multiprocess metrics directory when ``PROMETHEUS_MULTIPROC_DIR`` names one
    (``kiln serve`` sets it; an operator may too): the first build counted would fail without
    it. Without the variable, the worker's metrics stay in its memory (nobody scrapes them)."""
    from appliance.observability.multiprocess import (
        multiprocess_directory,
        prepare_multiprocess_directory,
    )

    configured = multiprocess_directory()
    if configured is not None:
        prepare_multiprocess_directory(configured)

"""``kiln worker``: run builds from the queue (one role of ``kiln serve``; scale out with more).

Uses ``CondaStore.database_url`` (or the managed PostgreSQL that ``kiln serve`` runs in the data
dir), the configured store and artifact storage, and ``CondaStoreWorker.concurrency``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln worker`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "worker",
        parents=[common],
        help="run builds from the queue",
        description="Take build jobs from the queue and run them until stopped (SIGTERM drains "
        "running builds first). Several workers on several hosts may share one database.",
    )
    parser.add_argument(
        "--concurrency", type=int, metavar="N",
        help="builds at a time (default: CondaStoreWorker.concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--burst", action="store_true",
        help="run the jobs already queued, then exit (for scripts and tests)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.builder.settings import settings_from_config
    from appliance.cli.database import database_location
    from appliance.config import load_config_from_args
    from appliance.queue.app import WorkerSettings
    from appliance.storage.factory import open_storage
    from appliance.worker.runner import run_worker

    config = load_config_from_args(args)
    location = database_location(config)
    concurrency = args.concurrency or config.worker.concurrency or 4
    if concurrency < 1:
        raise SystemExit("kiln worker: --concurrency must be at least 1")
    asyncio.run(
        run_worker(
            database_url=location.url,
            conninfo=location.conninfo,
            build_settings=settings_from_config(config),
            storage=open_storage(config.storage),
            settings=WorkerSettings(concurrency=concurrency),
            wait=not args.burst,
        )
    )
    return 0

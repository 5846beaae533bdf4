"""``kiln web``: serve the web app (one role of ``kiln serve``; scale out with more hosts).

Listens on ``CondaStoreServer.address``/``port`` and serves ``/healthz``, ``/readyz`` and
``/metrics`` (the REST API, UI and registry join it as they are built). Uses
``CondaStore.database_url``, or the managed PostgreSQL that ``kiln serve`` runs in the data dir.
Refuses to start (status 1) when the database cannot be reached or its schema is not the one
this Kiln knows (run ``kiln migrate``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from appliance.cli.options import at_least, quiet_alembic


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln web`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "web",
        parents=[common],
        help="serve the web app (API, UI, registry, /metrics, /healthz, /readyz)",
        description="Serve Kiln's web app on CondaStoreServer.address:port until stopped "
        "(SIGTERM lets open requests finish; SIGHUP replaces the worker processes). Several "
        "web processes on several hosts may share one database.",
    )
    parser.add_argument(
        "--workers", type=at_least(1, int), default=1, metavar="N",
        help="worker processes serving requests (default: 1)",
    )  # fmt: skip
    parser.add_argument(
        "--stop-timeout", type=at_least(1, float), default=10.0, metavar="SECONDS",
        help="on SIGTERM, how long open requests get to finish before the workers are killed "
        "(default: 10; keep it below Supervisor.web_stop_timeout under `kiln serve`)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet_alembic(args.log_level)
    with metrics_directory(args.workers):
        # Imported only now: prometheus_client picks its storage when first imported.
        from appliance.cli.database import database_location
        from appliance.config import load_config_from_args
        from appliance.web.server import serve
        from appliance.web.settings import WebSettings

        config = load_config_from_args(args)
        location = database_location(config)
        check_database(location.url)
        serve(
            WebSettings.from_config(config, database_url=location.url),
            address=config.server.address,
            port=config.server.port,
            workers=args.workers,
            stop_timeout=args.stop_timeout,
            log_level=args.log_level,
        )
    return 0


def check_database(url: str) -> None:
    """Raise unless the database answers and has this Kiln's schema (``kiln migrate``)."""
    from appliance.db.engine import create_engine
    from appliance.db.schema import check_schema

    engine = create_engine(url, application_name="kiln-web")
    try:
        check_schema(engine)
    finally:
        engine.dispose()


@contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """Multiprocess metrics for several workers.

    ``kiln serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` for its children. A ``kiln web`` started
    on its own with several workers needs it too, or each scrape would see one worker's
    counts: use a private directory for the lifetime of this command. The variable must be set
    before ``prometheus_client`` is imported, here and in the workers (which inherit it).
    """
    from appliance.observability.multiprocess import (
        MULTIPROC_DIR_ENV,
        multiprocess_directory,
        prepare_multiprocess_directory,
    )

    configured = multiprocess_directory()
    if configured is not None:
        prepare_multiprocess_directory(configured)
        yield
        return
    if workers == 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="kiln-web-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROC_DIR_ENV]
        shutil.rmtree(directory, ignore_errors=True)

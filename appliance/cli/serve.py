"""``kiln serve``: run everything Kiln needs on this host (see appliance.supervisor.serve)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln serve`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "serve",
        parents=[common],
        help="run Kiln: database, web and workers (the systemd service runs this)",
        description="Start the managed PostgreSQL (unless CondaStore.database_url is set), "
        "migrate the database, then the web process and the workers. SIGTERM or Ctrl-C stops "
        "them in reverse order, letting running builds finish (Supervisor.drain_timeout).",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.cli.options import quiet_alembic
    from appliance.config import load_config_from_args
    from appliance.supervisor.serve import Appliance, ServeOptions

    quiet_alembic(args.log_level)  # the supervisor migrates; its log says what matters
    config = load_config_from_args(args)
    options = ServeOptions(config_file=config.config_file, log_level=args.log_level)
    return asyncio.run(Appliance(config, options).run())

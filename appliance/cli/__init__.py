"""The ``kiln`` command line: argument parsing and dispatch to one module per subcommand.

Subcommand modules are imported lazily by :data:`COMMANDS` so that ``kiln --version`` does not
pay for importing the engine. Each module exposes ``register(subparsers, common)`` which adds its
parser(s) and sets ``func`` to a callable ``(args) -> int``.

Exit codes: 0 success, 1 a reported failure (a :class:`~appliance.common.errors.KilnError`),
2 bad usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from appliance import __version__
from appliance.common.errors import KilnError
from appliance.common.paths import DataDir, default_data_dir
from appliance.common.process import exit_now
from appliance.common.service_log import add_service_log, service_name

#: Subcommand modules under ``appliance.cli``; listed explicitly so a frozen binary collects them.
COMMANDS = (
    "channel",
    "build",
    "config",
    "migrate",
    "worker",
    "web",
    "token",
    "user",
    "serve",
    "image",
    "tui",
)


#: The long-running roles, with the service name each writes its log file under (``kiln
#: serve`` names its children itself: appliance.common.service_log).
LOGGED_ROLES = {"serve": "supervisor", "web": "web", "worker": "worker"}


def _import_command(name: str) -> ModuleType:
    # Static imports keep PyInstaller's analysis complete (no importlib-only modules).
    if name == "channel":
        from appliance.cli import channel

        return channel
    if name == "build":
        from appliance.cli import build

        return build
    if name == "config":
        from appliance.cli import config

        return config
    if name == "migrate":
        from appliance.cli import migrate

        return migrate
    if name == "worker":
        from appliance.cli import worker

        return worker
    if name == "web":
        from appliance.cli import web

        return web
    if name == "token":
        from appliance.cli import token

        return token
    if name == "user":
        from appliance.cli import user

        return user
    if name == "serve":
        from appliance.cli import serve

        return serve
    if name == "image":
        from appliance.cli import image

        return image
    if name == "tui":
        from appliance.cli import tui

        return tui
    return importlib.import_module(f"appliance.cli.{name}")


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand accepts (``--config``, ``--data-dir``, ``--log-level``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="traitlets configuration file (default: kiln_config.py in the data dir, if present)",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where Kiln keeps its state (default: $KILN_DATA_DIR, systemd's StateDirectory, "
        "or ~/.local/share/kiln)",
    )
    common.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on stderr (default: INFO)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kiln",
        description="Kiln: a self-hosted conda environment store in one executable.",
    )
    parser.add_argument("--version", action="version", version=f"kiln {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for name in COMMANDS:
        module = _import_command(name)
        module.register(subparsers, common)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """Standard error for every command; the long-running roles (:data:`LOGGED_ROLES`) also
    write their log file in the data dir, which the admin API reads
    (appliance.common.service_log)."""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    role = LOGGED_ROLES.get(args.command)
    if role is None:
        return
    chosen = getattr(args, "data_dir", None)
    data_dir = DataDir(Path(chosen).expanduser() if chosen else default_data_dir())
    # The supervisor is always "supervisor"; its children are told their names.
    add_service_log(data_dir.logs, role if args.command == "serve" else service_name(role))


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args)
    try:
        return int(args.func(args))
    except KilnError as error:
        print(f"kiln: error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kiln: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run, then leave without interpreter teardown (see exit_now)."""
    # conda-lock probes $PATH for a mamba binary when it is imported and fails without one;
    # a process started with an empty environment (cron, `env -i`) still gets the OS default.
    os.environ.setdefault("PATH", os.defpath)
    try:
        code = run(argv)
    except SystemExit as exit_request:  # argparse's --help/--version/usage errors
        code = exit_request.code if isinstance(exit_request.code, int) else 2
        if exit_request.code is None:
            code = 0
    exit_now(code)

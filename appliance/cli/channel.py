"""``kiln channel demo DIR`` and ``kiln channel index DIR``: local conda channels.

``demo`` writes Kiln's own small demo channel (first run and tests without internet);
``index`` (re)writes ``repodata.json`` for a channel directory an operator filled by hand, such
as a mirror carried into an air-gapped site.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance.channels.demo import write_demo_channel
from appliance.channels.index import ChannelSummary, index_channel, read_channel_summary


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln channel`` and its subcommands to the top-level ``subparsers``."""
    channel = subparsers.add_parser(
        "channel",
        help="write the demo channel or index a local conda channel",
        description="Local conda channels: Kiln's demo channel, and indexing for air-gapped use.",
    )
    actions = channel.add_subparsers(dest="channel_command", metavar="ACTION", required=True)

    demo = actions.add_parser(
        "demo",
        parents=[common],
        help="write a small, indexed demo channel (no internet needed)",
        description=(
            "Write Kiln's demo channel (about ten kiln-demo-* packages for linux-64 and noarch) "
            "into DIR and index it. DIR must be missing, empty or an earlier demo channel."
        ),
    )
    demo.add_argument("directory", type=Path, metavar="DIR", help="where to write the channel")
    demo.set_defaults(func=run_demo)

    index = actions.add_parser(
        "index",
        parents=[common],
        help="write repodata.json for a local channel directory",
        description=(
            "Index the conda channel in DIR: packages (*.conda, *.tar.bz2) in per-platform "
            "subdirs such as linux-64/ and noarch/. Packages already indexed are not read again "
            "unless --force is given."
        ),
    )
    index.add_argument("directory", type=Path, metavar="DIR", help="the channel directory")
    index.add_argument(
        "--force",
        action="store_true",
        help="re-read every package, e.g. after replacing files under the same name",
    )
    index.set_defaults(func=run_index)


def run_demo(args: argparse.Namespace) -> int:
    root = write_demo_channel(args.directory)
    print(f"Wrote the Kiln demo channel to {root}")
    _print_summary(read_channel_summary(root))
    return 0


def run_index(args: argparse.Namespace) -> int:
    summary = index_channel(args.directory.absolute(), force=args.force)
    print(f"Indexed the channel in {summary.directory}")
    _print_summary(summary)
    return 0


def _print_summary(summary: ChannelSummary) -> None:
    per_subdir = ", ".join(f"{subdir} {summary.packages[subdir]}" for subdir in summary.subdirs)
    print(f"  {summary.package_count} packages ({per_subdir})")
    print(f"  use it with: kiln build --channel {summary.url} environment.yaml")

"""``kiln config generate|show|verify``: write, print and check the configuration."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from appliance.common.errors import ConfigurationError


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``kiln config`` and its actions."""
    config = subparsers.add_parser(
        "config",
        help="write, print or check the configuration",
        description="Write a commented configuration file, print the effective configuration "
        "(secrets masked) or check a file.",
    )
    actions = config.add_subparsers(dest="config_action", metavar="ACTION")

    def usage(_args: argparse.Namespace) -> int:
        config.print_help(sys.stderr)
        return 2

    config.set_defaults(func=usage, log_level="INFO")

    generate = actions.add_parser(
        "generate",
        parents=[common],
        help="write a configuration file with every option commented out and documented",
        description="Write a configuration file with every option commented out with its "
        "default and its documentation (to stdout unless --output is given).",
    )
    generate.add_argument("--output", "-o", type=Path, metavar="FILE", help="file to write")
    generate.add_argument(
        "--force", action="store_true", help="overwrite FILE if it exists (default: refuse)"
    )
    generate.set_defaults(func=_generate)

    show = actions.add_parser(
        "show",
        parents=[common],
        help="print the effective configuration, secrets masked, with each value's source",
        description="Print the effective configuration (defaults, configuration file and "
        "KILN_* environment variables applied) with secrets masked and the source of each value.",
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of Python")
    show.set_defaults(func=_show)

    verify = actions.add_parser(
        "verify",
        parents=[common],
        help="check a configuration file (exit 1 if it has errors)",
        description="Check a configuration file without starting anything: unknown options, "
        "bad values, errors in the file. Exit status 0 (prints OK) when it has no errors, 1 "
        "otherwise; options Kiln ignores are reported as warnings.",
    )
    verify.add_argument(
        "file",
        nargs="?",
        type=Path,
        metavar="FILE",
        help="file to check (default: --config, else kiln_config.py in the data dir)",
    )
    verify.set_defaults(func=_verify)


def _generate(args: argparse.Namespace) -> int:
    from appliance.config.generate import generate_config
    from appliance.config.loader import resolve_paths

    data_dir, _ = resolve_paths(None, args.data_dir)
    text = generate_config(data_dir)
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
        return 0
    if output.exists() and not args.force:
        raise ConfigurationError(f"{output} already exists; pass --force to overwrite it")
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # no secrets in it; the service user must read it
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from appliance.config.loader import load_config_from_args
    from appliance.config.show import render_json, render_text

    loaded = load_config_from_args(args)
    sys.stdout.write(render_json(loaded) if args.json else render_text(loaded))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from appliance.config.loader import resolve_paths
    from appliance.config.verify import verify_file

    data_dir, found = resolve_paths(args.file or args.config, args.data_dir)
    if found is None:
        raise ConfigurationError(
            f"no configuration file to verify: give FILE, --config FILE, or create "
            f"{data_dir.config_file}"
        )
    problems = verify_file(found, data_dir)
    for problem in problems:
        print(problem)
    errors = sum(1 for problem in problems if problem.severity == "error")
    if errors:
        noun = "error" if errors == 1 else "errors"
        raise ConfigurationError(f"{found}: {errors} {noun}")
    warnings = len(problems)
    print(
        f"OK: {found}"
        + (f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else "")
    )
    return 0

"""``kiln build FILE``: a one-shot local build of an environment.yaml or lockfile, no server.

Used for demos, CI and air-gapped sites: the same engine the workers run, with the configuration
loaded from ``--config`` / the data dir, and a few overrides on the command line. The build log
streams to stderr; a summary of where the environment and its artifacts are goes to stdout
(``--json`` for scripts).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.common.errors import KilnError, SpecificationError

if TYPE_CHECKING:
    from appliance.config.loader import KilnConfig


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``kiln build`` to the top-level ``subparsers``."""
    parser = subparsers.add_parser(
        "build",
        parents=[common],
        help="build an environment.yaml or lockfile locally, without a server",
        description=(
            "Solve, lock, install and pack FILE (a conda environment.yaml or a conda-lock v1 "
            "lockfile; '-' reads stdin) with the configured store and storage, then point "
            "<store>/<namespace>/envs/<name> at the new build."
        ),
    )
    parser.add_argument(
        "file", metavar="FILE", help="environment.yaml or conda-lock.yml ('-': stdin)"
    )
    parser.add_argument(
        "-c",
        "--channel",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="channel to use before the spec's own (repeatable; a URL, an absolute path or a "
        "name under CondaStore.conda_channel_alias); allowed for this build",
    )
    parser.add_argument(
        "-n", "--namespace", help="namespace to build in (default: CondaStore.default_namespace)"
    )
    parser.add_argument("--name", help="environment name (default: the spec's name)")
    parser.add_argument(
        "--store-dir", type=Path, metavar="DIR", help="override CondaStore.store_directory"
    )
    parser.add_argument(
        "--storage",
        choices=["local", "s3"],
        help="override CondaStore.storage_class (S3 settings come from the S3Storage section)",
    )
    parser.add_argument(
        "--storage-path", type=Path, metavar="DIR", help="override LocalStorage.storage_path"
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="SUBDIR",
        help="also lock for this platform (repeatable; adds to CondaStore.conda_solve_platforms)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not stream the build log")
    parser.add_argument(
        "--queue",
        action="store_true",
        help="submit to the running Kiln's queue (its database) instead of building here; "
        "a worker builds it",
    )
    parser.add_argument(
        "--wait", action="store_true", help="with --queue: wait until the build has finished"
    )
    parser.set_defaults(func=run)


def _read(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    path = Path(file)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SpecificationError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise SpecificationError(f"{file}: is a directory, expected an environment.yaml") from None
    except OSError as error:
        raise SpecificationError(f"{file}: cannot be read: {error.strerror}") from None


def next_local_build_id(store_directory: Path) -> int:
    """A build id for builds made without a server, unique within ``store_directory``.

    A counter file under a lock, so concurrent ``kiln build`` runs never share a build key.
    """
    store_directory.mkdir(parents=True, exist_ok=True)
    counter = store_directory / ".kiln-local-build-id"
    with counter.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read().strip()
        build_id = (int(text) if text.isdigit() else 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(f"{build_id}\n")
    return build_id


def run(args: argparse.Namespace) -> int:
    # Heavy imports stay here so `kiln --version` and `kiln config` stay fast.
    from appliance.builder.pipeline import Builder, BuildRequest
    from appliance.builder.settings import settings_from_config
    from appliance.builder.solve import repodata_gateway
    from appliance.config import LocalStorage, S3Storage, load_config_from_args
    from appliance.schemas.specification import EnvironmentSpec, parse_specification
    from appliance.storage import ArtifactKind
    from appliance.storage.factory import open_storage

    config = load_config_from_args(args)
    if args.queue:
        return submit_to_queue(args, config)
    if args.store_dir is not None:
        config.conda_store.store_directory = str(args.store_dir.absolute())
    settings = settings_from_config(config)
    if args.channel:
        settings = dataclasses.replace(
            settings, allowed_channels=(*settings.allowed_channels, *args.channel)
        )
    if args.platform:
        settings = dataclasses.replace(
            settings, solve_platforms=(*settings.solve_platforms, *args.platform)
        )
        settings = dataclasses.replace(
            settings,
            virtual_packages={
                p: tuple(config.builder.virtual_packages_for(p))
                for p in dict.fromkeys((*settings.virtual_packages, *args.platform))
            },
        )

    section = config.storage
    if args.storage == "s3":
        section = config.section(S3Storage)
    elif args.storage == "local" or args.storage_path is not None:
        section = config.section(LocalStorage)
    if args.storage_path is not None and isinstance(section, LocalStorage):
        section.storage_path = str(args.storage_path.absolute())
    storage = open_storage(section)

    spec = parse_specification(_read(args.file), limits=settings.limits, name=args.name)
    if args.channel and isinstance(spec, EnvironmentSpec):
        spec = dataclasses.replace(spec, channels=(*args.channel, *spec.channels))
    namespace = args.namespace or config.conda_store.default_namespace
    builder = Builder(settings, storage, repodata_gateway(settings.repodata_cache))
    spec = builder.prepare(spec)
    storage.check()
    request = BuildRequest(
        namespace,
        spec,
        next_local_build_id(settings.store_directory),
        key_version=settings.build_key_version,
    )

    started = time.monotonic()
    echo: Callable[[str], object] | None = None if args.quiet or args.json else sys.stderr.write
    try:
        result = asyncio.run(builder.build(request, echo=echo, command=" ".join(sys.argv)))
    except KilnError as error:
        log_key = ArtifactKind.LOGS.storage_key(request.build_key)
        raise type(error)(
            f"{error.message}\n  full build log: {storage.location(log_key)}"
        ) from error
    elapsed = time.monotonic() - started

    artifacts = {
        name: (value if name == "DIRECTORY" else storage.location(value))
        for name, value in sorted(result.artifacts.items())
    }
    if args.json:
        print(
            json.dumps(
                {
                    "namespace": namespace,
                    "name": spec.name,
                    "build_id": request.build_id,
                    "build_key": result.build_key,
                    "prefix": str(result.prefix),
                    "environment": str(result.environment_link or result.prefix),
                    "platform": result.platform,
                    "size": result.size,
                    "seconds": round(elapsed, 3),
                    "packages": [dataclasses.asdict(p) for p in result.packages],
                    "artifacts": artifacts,
                },
                indent=2,
            )
        )
        return 0
    print(f"Built {namespace}/{spec.name} (build {request.build_id}) in {elapsed:.1f}s")
    if result.environment_link is not None:
        print(f"  environment  {result.environment_link} -> {result.prefix.name}")
    print(f"  prefix       {result.prefix}")
    print(f"  packages     {len(result.packages)} ({result.size / 1e6:.1f} MB)")
    print("  artifacts")
    for name, where in artifacts.items():
        if name != "DIRECTORY":
            print(f"    {name:<11}{where}")
    print(f"Its programs are in {result.environment_link or result.prefix}/bin")
    return 0


def submit_to_queue(args: argparse.Namespace, config: KilnConfig) -> int:
    """``kiln build --queue``: create the build through the service layer; a worker runs it."""
    from appliance.builder.settings import settings_from_config
    from appliance.cli.database import database_location
    from appliance.db.engine import create_engine
    from appliance.db.schema import check_schema
    from appliance.schemas.specification import parse_specification
    from appliance.services.builds import build_state, submit_specification
    from appliance.services.transactions import Transactions

    settings = settings_from_config(config)
    spec = parse_specification(_read(args.file), limits=settings.limits, name=args.name)
    engine = create_engine(database_location(config).url, application_name="kiln-build")
    try:
        check_schema(engine)
        transactions = Transactions(engine)
        submitted = transactions.run_now(
            submit_specification,
            namespace=args.namespace or config.conda_store.default_namespace,
            specification=spec,
            settings=settings,
        )
        verb = "Queued" if submitted.created else "Already built:"
        print(f"{verb} build {submitted.build_id} of {spec.name}")
        if not args.wait:
            return 0
        while True:
            state = transactions.run_now(build_state, submitted.build_id, settings)
            if state.status.is_final:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    print(
        f"Build {submitted.build_id}: {state.status}"
        + (f": {state.reason}" if state.reason else "")
    )
    if state.environment is not None and state.status == "COMPLETED":
        print(f"  environment  {state.environment}")
    return 0 if state.status == "COMPLETED" else 1

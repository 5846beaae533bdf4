"""Install benchmark: ``kiln-demo-big`` (3000 files) into a fresh prefix, warm package cache.

What is measured: Kiln's :func:`~appliance.builder.install.install_prefix` creating a new prefix
holding ``kiln-demo-big``, after a first, untimed install has extracted the package into the
package cache. That is the budgeted case: every build installs into a fresh prefix, and almost
every package of a build is already in the shared cache.

Baseline: ``cp -al`` of the extracted package directory from that cache into a fresh directory,
i.e. hardlinking the same 3000-file tree with the plainest tool there is. It is the floor of what
an installer that links from a cache can cost: Kiln also checks the archive's checksum, validates
the cache entry, writes ``conda-meta`` and checks for prefix placeholders, which ``cp`` does not.
Both sides run on the same filesystem and include their own start-up (``cp``'s fork/exec, one
coroutine run for Kiln); each repetition gets a fresh target that is deleted untimed afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from measure import BenchmarkError, Budget, Result, alternate, run_tool, timed
from rattler import RepoDataRecord

from appliance.builder.buildlog import BuildLog
from appliance.builder.install import install_prefix
from appliance.builder.solve import repodata_gateway, solve
from appliance.channels.demo import BIG_FILE_COUNT, write_demo_channel

#: The package installed.
PACKAGE = "kiln-demo-big"
#: Repetitions of each side.
REPEATS = 9
#: At most this many times the baseline.
BUDGET = Budget(3.0, ratio=True)


@dataclass(frozen=True)
class DemoInstall:
    """The demo channel, the solved ``kiln-demo-big`` record, a warm cache and one prefix."""

    records: list[RepoDataRecord]
    package_cache: Path
    extracted: Path
    prefix: Path


def prepare(workdir: Path, runner: asyncio.Runner) -> DemoInstall:
    """Write the demo channel, solve ``kiln-demo-big`` and install it once (filling the cache).

    Raises :class:`~measure.BenchmarkError` if the cache does not hold the extracted package
    where the baseline expects it.
    """
    channel = write_demo_channel(workdir / "channel")
    gateway = repodata_gateway(str(workdir / "repodata-cache"))
    solution = runner.run(
        solve(
            specs=[PACKAGE],
            channels=[channel.as_uri()],
            platforms=["linux-64"],
            virtual_packages_by_platform={"linux-64": ["__glibc=2.28", "__unix", "__linux=6.1"]},
            variables={},
            gateway=gateway,
            log=BuildLog(),
            timeout_seconds=60,
        )
    )
    records = solution.for_platform("linux-64")
    package_cache = workdir / "pkgs"
    prefix = workdir / "env"
    runner.run(install_prefix(records, prefix, package_cache=package_cache, log=BuildLog()))
    (record,) = records
    extracted = package_cache / f"{record.name.normalized}-{record.version}-{record.build}"
    _check_tree(extracted, "the extracted package in the cache")
    _check_tree(prefix, "the installed prefix")
    return DemoInstall(records, package_cache, extracted, prefix)


def run(workdir: Path) -> list[Result]:
    """Measure Kiln's warm-cache install against ``cp -al`` of the cached tree."""
    with asyncio.Runner() as runner:
        demo = prepare(workdir, runner)
        targets = workdir / "targets"
        targets.mkdir()

        def kiln(index: int) -> float:
            prefix = targets / f"kiln-{index}"
            seconds = timed(
                lambda: runner.run(
                    install_prefix(
                        demo.records, prefix, package_cache=demo.package_cache, log=BuildLog()
                    )
                )
            )
            _check_tree(prefix, "a benchmarked prefix", hardlinked=True)
            shutil.rmtree(prefix)
            return seconds

        def baseline(index: int) -> float:
            copy = targets / f"cp-{index}"
            seconds = timed(lambda: run_tool(["cp", "-al", str(demo.extracted), str(copy)]))
            _check_tree(copy, "a cp -al copy", hardlinked=True)
            shutil.rmtree(copy)
            return seconds

        kiln_samples, baseline_samples = alternate(REPEATS, kiln, baseline)
    return [
        Result(
            name="install",
            kiln=kiln_samples,
            baseline=baseline_samples,
            baseline_label="cp -al",
            budget=BUDGET,
            details=(
                f"{PACKAGE}: {BIG_FILE_COUNT} files, warm package cache, fresh prefix each time",
                f"kiln install_prefix: {kiln_samples.describe()}",
                f"cp -al of {demo.extracted.name}: {baseline_samples.describe()}",
            ),
        )
    ]


def _check_tree(root: Path, what: str, hardlinked: bool = False) -> None:
    """The tree holds all of ``kiln-demo-big``'s files (hardlinks, when ``hardlinked``):
    a benchmark that silently installed nothing, or copied, would measure the wrong thing."""
    files = sorted((root / "share" / "kiln-demo-big").rglob("*.txt"))
    if len(files) != BIG_FILE_COUNT:
        raise BenchmarkError(f"{what} ({root}) has {len(files)} files, not {BIG_FILE_COUNT}")
    if hardlinked and os.stat(files[0]).st_nlink < 2:
        raise BenchmarkError(f"{what} ({root}) holds copies, not hardlinks to the package cache")

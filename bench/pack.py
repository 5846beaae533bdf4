"""conda-pack benchmark: pack the ``kiln-demo-big`` prefix into a relocatable ``.tar.gz``.

What is measured: Kiln's :func:`~appliance.builder.pack.pack_prefix` (conda-pack, gzip, all
CPUs, as builds run it) packing a prefix that holds ``kiln-demo-big``'s 3000 files.

Baseline: ``tar -czf`` of the same prefix at the same gzip level as ``pack_prefix`` (read from its
source, so the two cannot drift apart). That is the cost of archiving and compressing the same
bytes; what conda-pack adds on top (reading ``conda-meta`` and the package cache to check that
every file is managed, rewriting prefixes, adding ``conda-unpack`` and the activate scripts) is
exactly what the budget bounds. The baseline is a ``tar | gzip`` pipeline: gzip itself is single
threaded but runs beside tar, while ``pack_prefix`` compresses with one thread per CPU; the
thread count is printed, and a one-thread ``pack_prefix`` figure is reported for reference. Both
sides write to the same filesystem; the first run of each is an untimed warm-up (imports, page
cache).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from pathlib import Path

from install import prepare
from measure import BenchmarkError, Budget, Result, Samples, alternate, run_tool, timed

from appliance.builder.pack import pack_prefix

#: Repetitions of each side.
REPEATS = 5
#: Repetitions of the one-thread reference figure.
SINGLE_THREAD_REPEATS = 3
#: At most this many times the baseline.
BUDGET = Budget(1.5, ratio=True)


def compression_level() -> int:
    """The gzip level ``pack_prefix`` passes to conda-pack (``compress_level=N`` in its source)."""
    found = re.findall(r"compress_level\s*=\s*(\d)", inspect.getsource(pack_prefix))
    if len(set(found)) != 1:
        raise BenchmarkError(
            "cannot tell which gzip level pack_prefix uses (expected one 'compress_level=N' in "
            f"appliance/builder/pack.py, found {found}); update bench/pack.py"
        )
    return int(found[0])


def run(workdir: Path) -> list[Result]:
    """Measure ``pack_prefix`` against ``tar -czf`` (same level) of the same prefix."""
    with asyncio.Runner() as runner:
        demo = prepare(workdir, runner)
    level = compression_level()
    threads = os.cpu_count() or 1
    archives = workdir / "archives"
    archives.mkdir()

    def kiln(index: int, threads: int | None = None) -> float:
        output = archives / f"kiln-{index}.tar.gz"
        seconds = timed(lambda: pack_prefix(demo.prefix, output, threads=threads))
        output.unlink()
        return seconds

    def baseline(index: int) -> float:
        output = archives / f"tar-{index}.tar.gz"
        command = ["tar", "-C", str(demo.prefix), "-I", f"gzip -{level}", "-cf", str(output), "."]
        seconds = timed(lambda: run_tool(command))
        output.unlink()
        return seconds

    kiln_size = _size_then_remove(pack_prefix(demo.prefix, archives / "warm-up.tar.gz"))
    run_tool(
        [
            "tar",
            "-C",
            str(demo.prefix),
            "-I",
            f"gzip -{level}",
            "-cf",
            str(archives / "warm-up-tar.tar.gz"),
            ".",
        ]
    )
    tar_size = _size_then_remove(archives / "warm-up-tar.tar.gz")
    kiln_samples, baseline_samples = alternate(REPEATS, kiln, baseline)
    single = Samples(tuple(kiln(100 + index, threads=1) for index in range(SINGLE_THREAD_REPEATS)))
    return [
        Result(
            name="pack",
            kiln=kiln_samples,
            baseline=baseline_samples,
            baseline_label=f"tar czf -{level}",
            budget=BUDGET,
            details=(
                f"prefix with kiln-demo-big; gzip level {level} on both sides; "
                f"pack_prefix threads={threads} (os.cpu_count)",
                f"kiln pack_prefix: {kiln_samples.describe()}; archive {kiln_size / 1e3:.0f} kB",
                f"tar -czf (gzip -{level}): {baseline_samples.describe()}; "
                f"archive {tar_size / 1e3:.0f} kB",
                f"kiln pack_prefix threads=1 (reference): {single.describe()}",
            ),
        )
    ]


def _size_then_remove(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size

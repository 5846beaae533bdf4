"""conda-pack benchmark: pack the ``kiln-demo-big`` prefix into a relocatable ``.tar.gz``.

What is measured: Kiln's :func:`~appliance.builder.pack.pack_prefix` (conda-pack deciding the
content, GNU tar writing it, gzip in the calling process, as builds run it) packing a prefix that
holds ``kiln-demo-big``'s 3000 files.

Baseline: ``tar -czf`` of the same prefix at the same gzip level as ``pack_prefix``
(:data:`~appliance.builder.pack.COMPRESS_LEVEL`, so the two cannot drift apart). That is the
cost of archiving and compressing the same bytes; what conda-pack adds on top (reading
``conda-meta`` and the package cache to check that every file is managed, rewriting prefixes,
adding ``conda-unpack`` and the activate scripts) is exactly what the budget bounds. The
in-process writer (used on hosts without GNU tar) is reported for reference. Both sides write
to the same filesystem; the first run of each is an untimed warm-up (imports, page cache).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from install import prepare
from measure import Budget, Result, Samples, alternate, run_tool, timed

from appliance.builder.pack import COMPRESS_LEVEL, pack_prefix

#: Repetitions of each side.
REPEATS = 5
#: Repetitions of the in-process writer's reference figure.
SINGLE_THREAD_REPEATS = 3
#: At most this many times the baseline.
BUDGET = Budget(1.5, ratio=True)


def run(workdir: Path) -> list[Result]:
    """Measure ``pack_prefix`` against ``tar -czf`` (same level) of the same prefix."""
    with asyncio.Runner() as runner:
        demo = prepare(workdir, runner)
    level = COMPRESS_LEVEL
    archives = workdir / "archives"
    archives.mkdir()

    def kiln(index: int, tar: str | None = "auto") -> float:
        output = archives / f"kiln-{index}.tar.gz"
        seconds = timed(lambda: pack_prefix(demo.prefix, output, tar=tar))
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
    in_process = Samples(
        tuple(kiln(100 + index, tar=None) for index in range(SINGLE_THREAD_REPEATS))
    )
    return [
        Result(
            name="pack",
            kiln=kiln_samples,
            baseline=baseline_samples,
            baseline_label=f"tar czf -{level}",
            budget=BUDGET,
            details=(
                f"prefix with kiln-demo-big; gzip level {level} on both sides",
                f"kiln pack_prefix: {kiln_samples.describe()}; archive {kiln_size / 1e3:.0f} kB",
                f"tar -czf (gzip -{level}): {baseline_samples.describe()}; "
                f"archive {tar_size / 1e3:.0f} kB",
                f"kiln pack_prefix, in-process writer (reference): {in_process.describe()}",
            ),
        )
    ]


def _size_then_remove(path: Path) -> int:
    size = path.stat().st_size
    path.unlink()
    return size

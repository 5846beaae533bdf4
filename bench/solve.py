"""Solve benchmark: an 8-spec request against a generated 500,000-record channel.

The channel is written once by :mod:`repodata` into ``bench/.cache`` and reused. rattler reads a
``file://`` channel's ``<subdir>/repodata.json`` only (memory-mapped; no ``.zst``, no shards, and
nothing is written to the gateway cache), so the generator writes just that file per subdir.

What is measured:

- cold: a new process (``solve_child.py cold``) imports rattler and Kiln's solver, creates a
  gateway and solves once, as a freshly started worker does. Two figures: the solve call timed
  inside the child, and the whole process's wall time seen from here (interpreter start, imports,
  solve, exit). The page cache is warm for both sides: a benchmark cannot fairly drop the caches
  of a shared machine, and a worker's repodata is usually in memory anyway.
- warm: the same request solved again with the same gateway in the same process
  (``solve_child.py warm``), the records already parsed; reported in absolute numbers, with a
  one-spec solve (``python 3.11.*``) beside it for scale.
- peak RSS of the cold child (``wait4``'s ``ru_maxrss``). It includes the mapped
  ``repodata.json`` pages rattler touched: shared page cache, not private memory; the child's
  anonymous and file-backed shares are printed too.

Baseline for cold: ``json.load`` of the same ``repodata.json`` in a new process (timed inside the
child, plus the process's wall time and peak RSS): the plainest way to read the channel at all.
It is not a solve, and the two read different amounts (rattler only parses the records of names
reachable from the request), which is the point: the ratio says how much the sparse reading buys.
Virtual packages are passed explicitly (``solve_child.VIRTUAL_PACKAGES``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measure import BenchmarkError, Budget, Result, Samples, Unit, show
from repodata import ensure_channel

#: Cold solves (each in a new process) and ``json.load`` baselines (each ~2 s and ~1.3 GB here).
COLD_REPEATS = 5
BASELINE_REPEATS = 3
COLD_BUDGET = Budget(1.5)
WARM_BUDGET = Budget(0.050)
RSS_BUDGET = Budget(600e6)

_CHILD = Path(__file__).resolve().with_name("solve_child.py")
_JSON_LOAD = """\
import json, sys, time
started = time.perf_counter()
with open(sys.argv[1], "rb") as repodata:
    document = json.load(repodata)
seconds = time.perf_counter() - started
records = len(document["packages"]) + len(document["packages.conda"])
print(json.dumps({"solve": seconds, "records": records}))
"""


@dataclass(frozen=True)
class ChildRun:
    """What a child printed, and what this process saw of it."""

    report: dict[str, Any]
    wall: float
    peak_rss: int
    started: float


def spawn(arguments: Sequence[str]) -> ChildRun:
    """Run ``arguments`` as a child, timing it from start to exit and reading its peak RSS from
    ``wait4`` (per child, unlike ``RUSAGE_CHILDREN``, which keeps the maximum over all).
    Raises :class:`BenchmarkError` if the child fails or prints no JSON report."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        started_monotonic = time.monotonic()
        started = time.perf_counter()
        child = subprocess.Popen(list(arguments), stdout=subprocess.PIPE, stderr=errors, text=True)
        assert child.stdout is not None
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        child.stdout.close()
        errors.seek(0)
        stderr = errors.read().strip()
    if child.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(arguments[1:3])} exited with {child.returncode}: {stderr[-3000:]}"
        )
    try:
        report = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError) as error:
        raise BenchmarkError(f"no report from {' '.join(arguments)}: {output!r}") from error
    return ChildRun(report, wall, usage.ru_maxrss * 1024, started_monotonic)


def run(cache_dir: Path) -> list[Result]:
    """Measure cold and warm solves and the cold peak RSS against ``json.load``."""
    started = time.perf_counter()
    channel = ensure_channel(cache_dir)
    prepared = time.perf_counter() - started
    cold_args = [sys.executable, str(_CHILD), "cold", str(cache_dir)]
    json_args = [sys.executable, "-c", _JSON_LOAD, str(channel.repodata)]

    cold: list[ChildRun] = []
    loads: list[ChildRun] = []
    for index in range(max(COLD_REPEATS, BASELINE_REPEATS)):
        if index < COLD_REPEATS:
            cold.append(spawn(cold_args))
        if index < BASELINE_REPEATS:
            loads.append(spawn(json_args))
    warm = spawn([sys.executable, str(_CHILD), "warm", str(cache_dir)])

    packages = {run.report["packages"] for run in (*cold, warm)}
    if len(packages) != 1:
        raise BenchmarkError(f"the same request gave different solutions: {sorted(packages)}")
    if any(run.report["records"] != channel.records for run in loads):
        raise BenchmarkError("json.load read a different number of records than were generated")

    solve = Samples(tuple(run.report["solve"] for run in cold))
    wall = Samples(tuple(run.wall for run in cold))
    startup = Samples(tuple(run.report["entered"] - run.started for run in cold))
    rss = Samples(tuple(run.peak_rss for run in cold), Unit.BYTES)
    load = Samples(tuple(run.report["solve"] for run in loads))
    load_wall = Samples(tuple(run.wall for run in loads))
    load_rss = Samples(tuple(run.peak_rss for run in loads), Unit.BYTES)
    warm_solve = Samples(tuple(warm.report["warm"]))
    small = Samples(tuple(warm.report["small"]))
    anon, mapped = cold[-1].report["rss_anon"], cold[-1].report["rss_file"]
    loaded = warm.report["loaded"]

    channel_line = (
        f"channel {channel.repodata} ({channel.records:,} records, {channel.names:,} names, "
        f"{channel.size_bytes / 1e6:.0f} MB; "
        + (f"ready in {prepared:.1f}s" if prepared > 1 else "reused from the cache")
        + ")"
    )
    request_line = (
        f"request: {', '.join(channel.specs)} -> {packages.pop()} packages; the gateway loaded "
        f"{loaded:,} records ({loaded / channel.records:.1%} of the channel)"
    )
    return [
        Result(
            name="solve-cold",
            kiln=solve,
            baseline=load,
            baseline_label="json.load",
            budget=COLD_BUDGET,
            details=(
                channel_line,
                request_line,
                f"cold solve, timed in a new process: {solve.describe()}",
                f"json.load in a new process: {load.describe()}",
            ),
        ),
        Result(
            name="solve-cold-wall",
            kiln=wall,
            baseline=load_wall,
            baseline_label="json.load process",
            budget=None,
            details=(
                f"whole cold process, start to exit: {wall.describe()}",
                f"  of which interpreter start and imports: {startup.describe()}",
                f"whole json.load process: {load_wall.describe()}",
            ),
        ),
        Result(
            name="solve-warm",
            kiln=warm_solve,
            budget=WARM_BUDGET,
            details=(
                f"same request, same gateway, same process: {warm_solve.describe()}",
                f"'{warm.report['small_spec']}' alone, warm: {small.describe()}",
            ),
        ),
        Result(
            name="solve-rss",
            kiln=rss,
            baseline=load_rss,
            baseline_label="json.load",
            budget=RSS_BUDGET,
            details=(
                f"peak RSS of the cold process: {rss.describe()}",
                f"  at exit: {show(anon, Unit.BYTES)} anonymous, {show(mapped, Unit.BYTES)} "
                "file-backed (mostly the mapped repodata.json: shared page cache)",
                f"peak RSS of the json.load process: {load_rss.describe()}",
            ),
        ),
    ]

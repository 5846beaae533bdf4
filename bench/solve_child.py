"""The process the solve benchmark starts: a fresh interpreter that solves like a Kiln worker.

``solve_child.py cold CACHE_DIR`` imports rattler and Kiln's solver, creates a gateway and solves
the benchmark request once. ``solve_child.py warm CACHE_DIR`` then solves it again several times
with the same gateway, solves ``python`` alone for comparison, and counts the records the gateway
loaded. Either prints one JSON object on stdout; the parent adds the wall time and peak RSS it
observes from outside. The child leaves through ``os._exit`` after flushing, as every script that
uses rattler must (NOTES.md: rattler's runtime can crash the interpreter at exit).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repodata import BenchChannel, ensure_channel

from appliance.builder.buildlog import BuildLog
from appliance.builder.solve import repodata_gateway, solve

#: The machine solved for, in Kiln's ``Builder.virtual_packages`` notation: passed explicitly so
#: that the build host's glibc, kernel and CPU never leak into the result.
VIRTUAL_PACKAGES = ("__glibc=2.28", "__unix", "__linux=6.1", "__archspec=1=x86_64")
#: Warm solves of the full request, and of ``python`` alone, in the warm child.
WARM_REPEATS = 10
SMALL_REPEATS = 5


def solve_request(
    runner: asyncio.Runner, channel: BenchChannel, gateway: Any, specs: Sequence[str]
) -> tuple[float, int]:
    """Seconds Kiln's :func:`solve` took for ``specs``, and how many packages it chose."""
    started = time.perf_counter()
    solution = runner.run(
        solve(
            specs=list(specs),
            channels=[channel.url],
            platforms=["linux-64"],
            virtual_packages_by_platform={"linux-64": VIRTUAL_PACKAGES},
            variables={},
            gateway=gateway,
            log=BuildLog(),
            timeout_seconds=600,
        )
    )
    return time.perf_counter() - started, len(solution.for_platform("linux-64"))


def measure(mode: str, cache_dir: Path) -> dict[str, Any]:
    """Run one child's measurements (see the module docstring)."""
    entered = time.monotonic()
    channel = ensure_channel(cache_dir)
    gateway_cache = Path(tempfile.mkdtemp(prefix="kiln-bench-gateway-"))
    try:
        with asyncio.Runner() as runner:
            gateway = repodata_gateway(str(gateway_cache))
            cold, packages = solve_request(runner, channel, gateway, channel.specs)
            report: dict[str, Any] = {"entered": entered, "solve": cold, "packages": packages}
            if mode == "warm":
                report["warm"] = [
                    solve_request(runner, channel, gateway, channel.specs)[0]
                    for _ in range(WARM_REPEATS)
                ]
                report["small_spec"] = channel.specs[0]
                report["small"] = [
                    solve_request(runner, channel, gateway, channel.specs[:1])[0]
                    for _ in range(SMALL_REPEATS)
                ]
                loaded = runner.run(
                    gateway.query(
                        [channel.url], ["linux-64", "noarch"], list(channel.specs), recursive=True
                    )
                )
                report["loaded"] = sum(len(records) for records in loaded)
        report["gateway_cache_files"] = sum(1 for _ in gateway_cache.rglob("*"))
    finally:
        shutil.rmtree(gateway_cache, ignore_errors=True)
    report.update(_memory())
    return report


def _memory() -> dict[str, int]:
    """Peak and current resident memory from ``/proc/self/status``, in bytes."""
    fields = {"VmHWM": "peak_rss", "RssAnon": "rss_anon", "RssFile": "rss_file"}
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            found[fields[key]] = int(value.split()[0]) * 1024
    return found


def main(arguments: Sequence[str]) -> int:
    if len(arguments) != 2 or arguments[0] not in ("cold", "warm"):
        print("usage: solve_child.py cold|warm CACHE_DIR", file=sys.stderr)
        return 2
    try:
        print(json.dumps(measure(arguments[0], Path(arguments[1]))))
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""``make bench``: Kiln's benchmarks, each against a baseline measured in the same run.

    .venv/bin/python bench/run.py [install] [pack] [solve] [queue] [serve] [api] [ui] [image]
                          [registry]

With no arguments all of them run: the build engine (``install``, ``pack``, ``solve``) and the
control plane (``queue``: submit-to-BUILDING latency; ``serve``: ``kiln serve`` start-up and
idle memory), the REST API (``api``: listings under load from wrk), the web UI (``ui``: the
environment list's render time with 1,000 environments, and its page weight) and images
(``image``: image build vs ``tar | gzip``; ``registry``: a 200 MB pull with skopeo vs Debian's
distribution).
Each benchmark prints its detail lines and one summary line per figure
(``install  kiln 61.2ms  baseline(cp -al) 35.0ms  ratio 1.75x  budget 3x  OK``); a final table
repeats them with minimums. Budgets are reported, never enforced: the exit status is 0 when
every benchmark measured, even over budget, and 1 when one broke (its traceback is printed and the
others still run). Scratch files go to a temporary directory; the generated 500,000-record
channel is kept in ``bench/.cache`` (ignored by its own ``.gitignore``) and reused.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

import install
import pack
import solve
from measure import Result, show

#: Where generated benchmark data is kept between runs.
CACHE_DIR = Path(__file__).resolve().parent / ".cache"


def _queue(scratch: Path) -> list[Result]:
    # The control-plane benchmarks load the database stack: only when they run.
    import queue_latency

    return queue_latency.run(scratch)


def _serve(scratch: Path) -> list[Result]:
    import serve_start

    return serve_start.run(scratch)


#: Every benchmark, in the order they run; each takes a fresh scratch directory.
def _image(scratch: Path) -> list[Result]:
    import image_build

    return image_build.run(scratch)


def _registry(scratch: Path) -> list[Result]:
    import registry_pull

    return registry_pull.run(scratch)


def _ui(scratch: Path) -> list[Result]:
    import ui_render

    return ui_render.run(scratch)


def _api(scratch: Path) -> list[Result]:
    import api_throughput

    return api_throughput.run(scratch)


BENCHMARKS: dict[str, Callable[[Path], list[Result]]] = {
    "install": install.run,
    "pack": pack.run,
    "solve": lambda _scratch: solve.run(CACHE_DIR),
    "queue": _queue,
    "serve": _serve,
    "api": _api,
    "ui": _ui,
    "image": _image,
    "registry": _registry,
}


def main(arguments: Sequence[str]) -> int:
    unknown = [name for name in arguments if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    chosen = list(dict.fromkeys(arguments)) or list(BENCHMARKS)
    print(_machine())
    results: list[Result] = []
    broken: list[str] = []
    for name in chosen:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f"kiln-bench-{name}-"))
        try:
            figures = BENCHMARKS[name](scratch)
        except Exception:
            traceback.print_exc()
            print(f"{name}: BENCHMARK BROKEN (see the traceback above)", flush=True)
            broken.append(name)
            continue
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for result in figures:
            for line in result.details:
                print(f"  {line}")
        for result in figures:
            print(result.summary())
        print(f"({name} took {time.perf_counter() - started:.1f}s)", flush=True)
        results.extend(figures)
    print()
    print(_table(results))
    if broken:
        print(f"\nBROKEN: {', '.join(broken)}")
    over = [result.name for result in results if result.within_budget is False]
    if over:
        print(f"\nOVER BUDGET: {', '.join(over)} (reported, not enforced)")
    return 1 if broken else 0


def _machine() -> str:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, load average {load}; Python {platform.python_version()}, "
        f"py-rattler {version('py-rattler')}, conda-pack {version('conda-pack')}"
    )


def _table(results: Sequence[Result]) -> str:
    header = ("benchmark", "kiln median (min)", "baseline median (min)", "ratio", "budget", "")
    rows = [header]
    for result in results:
        unit = result.kiln.unit
        kiln = f"{show(result.kiln.median, unit)} ({show(result.kiln.min, unit)})"
        baseline, ratio = "-", "-"
        if result.baseline is not None:
            base_unit = result.baseline.unit
            baseline = (
                f"{result.baseline_label} {show(result.baseline.median, base_unit)} "
                f"({show(result.baseline.min, base_unit)})"
            )
            ratio = f"{result.ratio:.2f}x"
        budget = result.budget.describe(unit) if result.budget is not None else "-"
        rows.append((result.name, kiln, baseline, ratio, budget, result.verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # rattler's runtime can crash the interpreter at exit (NOTES.md): leave without teardown.
    os._exit(code)

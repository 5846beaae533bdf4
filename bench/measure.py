"""Repeated measurements, budgets and the one-line summaries every benchmark prints.

The machines are shared and noisy, so every figure is measured several times and reported as
median and minimum; budgets are checked against the median (a typical run, not a lucky one), and
a ratio is always the ratio of medians of Kiln and a baseline measured in the same run, so a slow
machine slows both sides. A budget miss is printed as ``OVER BUDGET`` but never fails the run;
only a benchmark that cannot measure (an exception) does.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum


class BenchmarkError(Exception):
    """The benchmark itself broke (not a budget miss): the run exits non-zero."""


class Unit(Enum):
    SECONDS = "s"
    BYTES = "B"


@dataclass(frozen=True)
class Samples:
    """Repeated measurements of one quantity, in ``unit``."""

    values: tuple[float, ...]
    unit: Unit = Unit.SECONDS

    def __post_init__(self) -> None:
        if not self.values:
            raise BenchmarkError("no measurements were taken")

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def describe(self) -> str:
        """``median 0.21s, min 0.19s (n=7)``."""
        return (
            f"median {show(self.median, self.unit)}, min {show(self.min, self.unit)}, "
            f"max {show(self.max, self.unit)} (n={len(self.values)})"
        )


@dataclass(frozen=True)
class Budget:
    """A limit: on the ratio of medians to the baseline (``ratio``), or on Kiln's median."""

    limit: float
    ratio: bool = False

    def describe(self, unit: Unit) -> str:
        return f"{self.limit:g}x" if self.ratio else f"<{show(self.limit, unit)}"


@dataclass(frozen=True)
class Result:
    """One benchmark figure: Kiln's samples, the baseline's, the budget and detail lines."""

    name: str
    kiln: Samples
    budget: Budget | None
    baseline: Samples | None = None
    baseline_label: str = ""
    details: Sequence[str] = field(default_factory=tuple)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.kiln.median / self.baseline.median

    @property
    def within_budget(self) -> bool | None:
        """None when there is no budget (an informational figure)."""
        if self.budget is None:
            return None
        if self.budget.ratio:
            ratio = self.ratio
            if ratio is None:
                raise BenchmarkError(f"{self.name}: a ratio budget needs a baseline")
            return ratio <= self.budget.limit
        return self.kiln.median < self.budget.limit

    @property
    def verdict(self) -> str:
        within = self.within_budget
        return "info" if within is None else ("OK" if within else "OVER BUDGET")

    def summary(self) -> str:
        """``install  kiln 0.21s  baseline(cp -al) 0.09s  ratio 2.3x  budget 3x  OK``."""
        unit = self.kiln.unit
        parts = [f"{self.name:<15}", f"kiln {show(self.kiln.median, unit)}"]
        if self.baseline is not None:
            parts.append(
                f"baseline({self.baseline_label}) {show(self.baseline.median, self.baseline.unit)}"
            )
            parts.append(f"ratio {self.ratio:.2f}x")
        if self.budget is not None:
            parts.append(f"budget {self.budget.describe(unit)}")
        parts.append(self.verdict)
        return "  ".join(parts)


def show(value: float, unit: Unit) -> str:
    """A value for humans: ``1.23s``, ``0.21s``, ``53.1ms``, ``312MB``."""
    if unit is Unit.BYTES:
        return f"{value / 1e3:.1f}kB" if value < 1e6 else f"{value / 1e6:.0f}MB"
    if value >= 0.1:
        return f"{value:.2f}s"
    return f"{value * 1e3:.1f}ms"


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took (monotonic, high resolution)."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def alternate(
    repeats: int,
    kiln: Callable[[int], float],
    baseline: Callable[[int], float],
) -> tuple[Samples, Samples]:
    """Run ``kiln(i)`` and ``baseline(i)`` ``repeats`` times each, alternating which goes first,
    so that drift on a shared machine (another job starting, caches cooling) hits both sides."""
    kiln_values: list[float] = []
    baseline_values: list[float] = []
    for index in range(repeats):
        if index % 2 == 0:
            kiln_values.append(kiln(index))
            baseline_values.append(baseline(index))
        else:
            baseline_values.append(baseline(index))
            kiln_values.append(kiln(index))
    return Samples(tuple(kiln_values)), Samples(tuple(baseline_values))


def run_tool(arguments: Sequence[str]) -> None:
    """Run a baseline command line; a failure is a broken benchmark."""
    completed = subprocess.run(list(arguments), capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(arguments)} exited with {completed.returncode}: {completed.stderr.strip()}"
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (0.99 for p99), interpolated between the two
    nearest ranks (numpy's default 'linear' method)."""
    if not values:
        raise BenchmarkError("no measurements were taken")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(samples: Samples) -> str:
    """``p50 12.1ms, p90 20.3ms, p99 48.0ms, max 51.2ms (n=200)``: a latency distribution."""
    values = samples.values
    parts = [
        f"p{round(fraction * 100)} {show(percentile(values, fraction), samples.unit)}"
        for fraction in (0.5, 0.9, 0.99)
    ]
    return (
        f"{', '.join(parts)}, min {show(samples.min, samples.unit)}, "
        f"max {show(samples.max, samples.unit)} (n={len(values)})"
    )

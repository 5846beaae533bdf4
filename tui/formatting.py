"""How the console writes numbers, sizes, times and durations in a few columns.

Values that change from one moment to the next (times, ages, pids, free space) go through a
:class:`Formats` object that the app is given, never through the functions directly from a
screen: a test that needs the same screen on every run passes :class:`Formats` with a fixed
clock and masks (``Formats(clock=..., steady=True)``), and the console run by an operator uses
the real clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The UTC timestamp that starts each line of a build log (the date is the build's).
_LOG_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T(\d{2}:\d{2}:\d{2})(?:\.\d+)?Z ")

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(count: int | None) -> str:
    """Bytes in the largest unit that keeps the number below 1024: ``1.5 GiB``, ``812 KiB``."""
    if count is None:
        return "-"
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def duration(seconds: float | None) -> str:
    """A duration in at most two units: ``45s``, ``3m 05s``, ``2h 10m``, ``4d 03h``."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Formats:
    """Writes the values that change between runs (see the module docstring).

    ``clock``: what "now" is (aware UTC). ``steady``: write times, pids and free space as
    fixed placeholders, so that two runs of the same screen look the same (snapshot tests).
    """

    clock: Callable[[], datetime] = field(default=system_clock)
    steady: bool = False

    def now(self) -> datetime:
        return self.clock()

    def moment(self, when: datetime | None) -> str:
        """A point in time, in UTC: ``2025-11-26 14:03``."""
        if when is None:
            return "-"
        if self.steady:
            return "YYYY-MM-DD hh:mm"
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")

    def time_of_day(self, when: datetime | None) -> str:
        """The time of a log record, in UTC: ``14:03:07``."""
        if when is None:
            return "--:--:--"
        if self.steady:
            return "hh:mm:ss"
        return when.astimezone(UTC).strftime("%H:%M:%S")

    def age(self, when: datetime | None) -> str:
        """How long ago: ``3m 05s ago``."""
        if when is None:
            return "-"
        if self.steady:
            return "a while ago"
        return f"{duration((self.now() - when).total_seconds())} ago"

    def elapsed(self, start: datetime | None, end: datetime | None = None) -> str:
        """From ``start`` to ``end`` (default: now)."""
        if start is None:
            return "-"
        if self.steady:
            return "--"
        return duration(((end or self.now()) - start).total_seconds())

    def seconds(self, value: float | None) -> str:
        """A duration measured by the server (an uptime)."""
        if value is None:
            return "-"
        return "--" if self.steady else duration(value)

    def pid(self, value: int | None) -> str:
        if value is None:
            return "-"
        return "#####" if self.steady else str(value)

    def memory(self, value: int | None) -> str:
        if value is None:
            return "-"
        return "-- MiB" if self.steady else size(value)

    def log_line(self, line: str) -> str:
        """A build log's line with its timestamp cut to the time of day (``14:03:07 ...``)."""
        return _LOG_STAMP.sub("hh:mm:ss " if self.steady else r"\1 ", line, count=1)

    def server(self, url: str) -> str:
        """The server's address (tests run servers on a different port each time)."""
        if not self.steady:
            return url
        scheme, _, rest = url.partition("://")
        host, _, path = rest.partition("/")
        return f"{scheme}://{host.rpartition(':')[0] or host}:PORT" + (f"/{path}" if path else "")

    def path(self, text: str) -> str:
        """A path on the server (tests' data dirs are temporary: steady keeps its last part)."""
        if not self.steady or "/" not in text:
            return text
        return ".../" + text.rstrip("/").rpartition("/")[2]

    def trend(self, samples: list[float]) -> list[float]:
        """The samples a sparkline draws (steady: one, whatever was sampled)."""
        return [1.0] if self.steady and samples else samples

    def share(self, part: int, whole: int) -> str:
        """``part`` of ``whole`` as a percentage (of a disk that fills up: steady masks it)."""
        if not whole:
            return "-"
        return "--%" if self.steady else f"{100 * part / whole:.0f}%"

    def stored(self, value: int | None) -> str:
        """Bytes a build or namespace takes (installed files hold their prefix, whose length
        differs between test runs: steady masks it)."""
        if value is None:
            return "-"
        return "-- KiB" if self.steady else size(value)

    def disk(self, value: int | None) -> str:
        """Space on a file system (changes all the time, unlike a build's size)."""
        if value is None:
            return "-"
        return "-- GiB" if self.steady else size(value)

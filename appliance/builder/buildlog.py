"""The build log: lines appended as the build runs, with one section per step.

A build's log is what a user reads when something goes wrong, so every step announces itself,
reports what it did and how long it took, and a failure ends with the full explanation (for a
solve, the solver's tree). Lines are handed to sinks as they are written: the storage backend
(``logs/<key>.log``, so the API can stream it live) and, for ``kiln build``, the terminal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Something that receives log text (already newline-terminated) as it is written.
LogSink = Callable[[str], object]


@dataclass
class StepTiming:
    """How long one step of a build took."""

    name: str
    started: float
    ended: float | None = None

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


@dataclass
class BuildLog:
    """Append-only, thread-safe build log.

    Lines are timestamped and prefixed with the current step, e.g.
    ``2026-11-25T18:00:00Z [solve] 12 packages for linux-64``. Writers may be rattler's callback
    threads, hence the lock.
    """

    sinks: list[LogSink] = field(default_factory=list)
    steps: list[StepTiming] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _step: str = "build"

    def write(self, message: str) -> None:
        """Append ``message`` (one or more lines) under the current step."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = message.rstrip("\n").splitlines() or [""]
        text = "".join(f"{stamp} [{self._step}] {line}\n" for line in lines)
        with self._lock:
            for sink in self.sinks:
                sink(text)

    @contextmanager
    def step(self, name: str) -> Iterator[StepTiming]:
        """Run a named step: announce it, time it, and report its outcome."""
        timing = StepTiming(name=name, started=time.monotonic())
        self.steps.append(timing)
        previous, self._step = self._step, name
        self.write(f"--- {name} ---")
        try:
            yield timing
        except BaseException as error:
            timing.ended = time.monotonic()
            self.write(f"{name} failed after {timing.seconds:.2f}s: {type(error).__name__}")
            raise
        else:
            timing.ended = time.monotonic()
            self.write(f"{name} done in {timing.seconds:.2f}s")
        finally:
            self._step = previous
            self.flush()

    def flush(self) -> None:
        """Ask every sink that buffers (has a ``flush`` method) to write out what it holds."""
        with self._lock:
            for sink in self.sinks:
                flush = getattr(sink, "flush", None)
                if flush is not None:
                    flush()

"""Child processes under supervision: start in order, restart with backoff, stop in reverse.

``kiln serve`` runs its roles (web, workers) as children of one supervisor process, each a
re-execution of the same program (``sys.executable`` is the frozen binary when frozen). A child
that exits on its own is restarted after a growing delay and its exit status is logged; a child
that keeps crashing is reported as a crash loop (logged at error level and visible in its state)
and retried at the slowest pace rather than given up on or hidden. Stopping sends the child's
stop signal, waits its stop timeout (a worker drains running builds in that time), then kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

logger = logging.getLogger("kiln.supervisor")


class ChildState(StrEnum):
    """Where a child is in its life, as the admin console shows it."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    CRASH_LOOP = "crash-loop"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Backoff:
    """Delay before restarting a crashed child: ``initial * factor**n``, at most ``maximum``."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** max(attempt, 0)))


@dataclass(frozen=True)
class CrashLoop:
    """``restarts`` exits within ``window`` seconds make a crash loop."""

    restarts: int = 5
    window: float = 60.0


@dataclass(frozen=True)
class ChildSpec:
    """How to run one role."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    #: Seconds between the stop signal and SIGKILL.
    stop_timeout: float = 30.0
    #: A child that has run this long without exiting counts as healthy again (backoff resets).
    healthy_after: float = 10.0


def describe_exit(returncode: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL``, as an operator reads it."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class Child:
    """A supervised child process and its history."""

    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    state: ChildState = ChildState.STOPPED
    started_at: float | None = None
    restarts: int = 0
    last_exit: str | None = None
    recent_exits: deque[float] = field(default_factory=lambda: deque(maxlen=64))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def uptime(self) -> float | None:
        if self.started_at is None or self.state not in (ChildState.RUNNING, ChildState.STARTING):
            return None
        return time.monotonic() - self.started_at


class Supervisor:
    """Runs ``specs`` as children; see the module docstring for the policy."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff: Backoff = Backoff(),
        crash_loop: CrashLoop = CrashLoop(),
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._backoff = backoff
        self._crash_loop = crash_loop
        self._stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        child.state = ChildState.STARTING
        child.process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env) if spec.env is not None else None,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.state = ChildState.RUNNING
        logger.info("started %s (pid %d)", spec.name, child.process.pid)

    async def start(self) -> None:
        """Start every child in order and begin watching them."""
        for child in self.children:
            await self._spawn(child)
            self._watchers.append(
                asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}")
            )

    async def _watch(self, child: Child) -> None:
        """Wait for ``child`` to exit; restart it unless the supervisor is stopping."""
        attempt = 0
        while True:
            assert child.process is not None
            returncode = await child.process.wait()
            if self._stopping.is_set():
                return
            now = time.monotonic()
            child.last_exit = describe_exit(returncode)
            child.recent_exits.append(now)
            ran_for = now - (child.started_at or now)
            attempt = 0 if ran_for >= child.spec.healthy_after else attempt + 1
            window_start = now - self._crash_loop.window
            recent = sum(1 for moment in child.recent_exits if moment >= window_start)
            delay = self._backoff.delay(attempt)
            if recent >= self._crash_loop.restarts:
                child.state = ChildState.CRASH_LOOP
                delay = self._backoff.maximum
                logger.error(
                    "%s is crash-looping: %d exits in %.0fs, the last with %s; "
                    "retrying every %.0fs",
                    child.spec.name, recent, self._crash_loop.window, child.last_exit, delay,
                )  # fmt: skip
            else:
                child.state = ChildState.BACKOFF
                logger.warning(
                    "%s (pid %s) stopped unexpectedly with %s after %.1fs; restarting in %.1fs",
                    child.spec.name, child.pid, child.last_exit, ran_for, delay,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            if self._stopping.is_set():
                child.state = ChildState.STOPPED
                return
            child.restarts += 1
            await self._spawn(child)

    async def _stop_child(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            child.state = ChildState.STOPPED
            return
        child.state = ChildState.STOPPING
        spec = child.spec
        logger.info("stopping %s (pid %d)", spec.name, process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(spec.stop_signal)
        try:
            await asyncio.wait_for(process.wait(), timeout=spec.stop_timeout)
        except TimeoutError:
            logger.warning("%s did not stop within %.0fs; killing it", spec.name, spec.stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        child.last_exit = describe_exit(process.returncode or 0)
        child.state = ChildState.STOPPED
        logger.info("%s stopped (%s)", spec.name, child.last_exit)

    async def stop(self) -> None:
        """Stop every child in reverse start order (each waits for the one after it)."""
        self._stopping.set()
        for child in reversed(self.children):
            await self._stop_child(child)
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()

"""Child processes under supervision: start in order, restart with backoff, stop in reverse.

``kiln serve`` runs its roles (web, workers) as children of one supervisor process, each a
re-execution of the same program (``sys.executable`` is the frozen binary when frozen). A child
that exits on its own is restarted after a growing delay and its exit status is logged; a child
that keeps crashing is reported as a crash loop (logged at error level and visible in its state)
and retried at the slowest pace rather than given up on or hidden. Stopping sends the child's
stop signal, waits its stop timeout (a worker drains running builds in that time), then kills.

An operator may ask for a restart (:meth:`Supervisor.restart`, through the control channel of
appliance.supervisor.control): the child is stopped the same graceful way and started again at
once. It counts in ``restarts`` and ``requested_restarts``, never as a crash (no backoff, no
crash-loop count). Each child has a lock held while it is spawned, stopped or restarted, so a
restart, the watcher's own restart after a crash and the supervisor's shutdown never act on the
same child at once; once the supervisor is stopping, nothing is started again.

Every change of a child's state calls ``on_change`` (appliance.supervisor.status publishes the
states for the admin API).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    #: ``time.monotonic()`` when the running process started.
    started_at: float | None = None
    #: The same moment by the wall clock (what the admin API shows).
    started_on: datetime | None = None
    #: Times it was started again (after exiting on its own, or on request).
    restarts: int = 0
    #: Of ``restarts``, how many an operator asked for.
    requested_restarts: int = 0
    last_exit: str | None = None
    recent_exits: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    #: Held while the child is spawned, stopped or restarted (see the module docstring).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

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
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._backoff = backoff
        self._crash_loop = crash_loop
        self._on_change = on_change
        self._stopping = asyncio.Event()
        self._watchers: dict[str, asyncio.Task[None]] = {}

    def child(self, name: str) -> Child:
        """The child called ``name``; :class:`KeyError` when there is none."""
        for child in self.children:
            if child.spec.name == name:
                return child
        raise KeyError(name)

    def _set_state(self, child: Child, state: ChildState) -> None:
        child.state = state
        if self._on_change is not None:
            self._on_change()

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        self._set_state(child, ChildState.STARTING)
        child.process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env=dict(spec.env) if spec.env is not None else None,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.started_on = datetime.now(UTC)
        self._set_state(child, ChildState.RUNNING)
        logger.info("started %s (pid %d)", spec.name, child.process.pid)

    def _watch_child(self, child: Child) -> None:
        name = child.spec.name
        self._watchers[name] = asyncio.create_task(self._watch(child), name=f"watch-{name}")

    async def _unwatch(self, child: Child) -> None:
        watcher = self._watchers.pop(child.spec.name, None)
        if watcher is None:
            return
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    async def start(self) -> None:
        """Start every child in order and begin watching them."""
        for child in self.children:
            async with child.lock:
                await self._spawn(child)
            self._watch_child(child)

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
                self._set_state(child, ChildState.CRASH_LOOP)
                delay = self._backoff.maximum
                logger.error(
                    "%s is crash-looping: %d exits in %.0fs, the last with %s; "
                    "retrying every %.0fs",
                    child.spec.name, recent, self._crash_loop.window, child.last_exit, delay,
                )  # fmt: skip
            else:
                self._set_state(child, ChildState.BACKOFF)
                logger.warning(
                    "%s (pid %s) stopped unexpectedly with %s after %.1fs; restarting in %.1fs",
                    child.spec.name, child.pid, child.last_exit, ran_for, delay,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            async with child.lock:
                if self._stopping.is_set():
                    self._set_state(child, ChildState.STOPPED)
                    return
                child.restarts += 1
                await self._spawn(child)

    async def _stop_child(self, child: Child) -> None:
        """Stop ``child`` gracefully (the caller holds its lock and has stopped its watcher, or
        the supervisor is stopping)."""
        process = child.process
        if process is None or process.returncode is not None:
            self._set_state(child, ChildState.STOPPED)
            return
        self._set_state(child, ChildState.STOPPING)
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
        self._set_state(child, ChildState.STOPPED)
        logger.info("%s stopped (%s)", spec.name, child.last_exit)

    # --- restarts an operator asked for --------------------------------------------------------

    async def restart(self, name: str) -> None:
        """Stop the child ``name`` gracefully and start it again (a requested restart);
        :class:`KeyError` when there is no such child."""
        self.child(name)
        await self.stop_children([name])
        await self.start_children([name])

    async def stop_children(self, names: Sequence[str]) -> None:
        """Stop the named children, in reverse start order, for a restart: they stay stopped
        (unwatched) until :meth:`start_children`."""
        wanted = set(names)
        for child in reversed(self.children):
            if child.spec.name in wanted:
                async with child.lock:
                    await self._unwatch(child)
                    await self._stop_child(child)

    async def start_children(self, names: Sequence[str]) -> None:
        """Start the named children again, in start order, counting a requested restart each;
        nothing is started once the supervisor is stopping."""
        wanted = set(names)
        for child in self.children:
            if child.spec.name not in wanted:
                continue
            async with child.lock:
                if self._stopping.is_set():
                    return
                child.restarts += 1
                child.requested_restarts += 1
                await self._spawn(child)
                self._watch_child(child)
            logger.info("%s restarted on request (pid %s)", child.spec.name, child.pid)

    async def stop(self) -> None:
        """Stop every child in reverse start order (each waits for the one after it)."""
        self._stopping.set()
        for child in reversed(self.children):
            async with child.lock:
                await self._stop_child(child)
        watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        self._watchers.clear()

"""The supervisor's status file: what ``kiln serve`` runs, in which state, using how much memory.

The web process is the supervisor's child, so it cannot ask the supervisor's objects; it reads
the file :class:`StatusPublisher` keeps in ``<data dir>/run/supervisor.json`` (format, atomic
replacement and staleness: appliance.services.supervision). The publisher rewrites it when any
service changes state (:meth:`StatusPublisher.changed`, wired to the children's ``on_change``)
and every :data:`~appliance.services.supervision.STATUS_INTERVAL` seconds, so uptimes and
memory stay fresh and a reader can tell a live supervisor from a stuck one. It removes the file
when the supervisor stops.

Memory comes from ``/proc``: the process's own resident set (``VmRSS``) and, for the process
with all its descendants (granian's worker processes, PostgreSQL's backends, a build's
subprocesses), the sum of their proportional set sizes (``Pss`` in ``smaps_rollup``: a page
shared by N processes counts 1/N for each), which adds up to what they really use together.
Where ``smaps_rollup`` cannot be read, the resident set stands in. Measuring reads a few files
per process and runs on a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.services.supervision import (
    STATUS_FORMAT,
    STATUS_INTERVAL,
    PublishedStatus,
    RequestRecord,
    ServiceKind,
    ServiceStatus,
    SupervisorInfo,
    publish,
    restart_targets,
    start_ticks,
    withdraw,
)
from appliance.supervisor.children import Child, ChildState, Supervisor

logger = logging.getLogger("kiln.supervisor")

_PROC = Path("/proc")


# --- memory from /proc ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessTable:
    """One reading of ``/proc``: the children of every process."""

    children: dict[int, list[int]]

    @classmethod
    def read(cls, proc: Path = _PROC) -> ProcessTable:
        children: dict[int, list[int]] = {}
        try:
            entries = list(os.scandir(proc))
        except OSError:
            return cls({})
        for entry in entries:
            if not entry.name.isdigit():
                continue
            parent = _parent_of(Path(entry.path))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
        return cls(children)

    def tree(self, pid: int) -> list[int]:
        """``pid`` and all its descendants."""
        found = [pid]
        index = 0
        while index < len(found):
            found.extend(self.children.get(found[index], ()))
            index += 1
        return found


def _parent_of(process: Path) -> int | None:
    try:
        fields = (process / "stat").read_text().rpartition(")")[2].split()
        return int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _kilobytes(path: Path, key: str) -> int | None:
    """The ``key: N kB`` value of a /proc file, in bytes."""
    try:
        with path.open() as lines:
            for line in lines:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return None


def rss_bytes(pid: int, proc: Path = _PROC) -> int | None:
    """Resident memory of ``pid`` (None when it is gone or unreadable)."""
    return _kilobytes(proc / str(pid) / "status", "VmRSS:")


def pss_bytes(pid: int, proc: Path = _PROC) -> int | None:
    """Proportional set size of ``pid``, else its resident memory."""
    found = _kilobytes(proc / str(pid) / "smaps_rollup", "Pss:")
    return found if found is not None else rss_bytes(pid, proc)


@dataclass(frozen=True)
class Memory:
    """What one service uses (see the module docstring)."""

    rss_bytes: int | None
    memory_bytes: int | None
    processes: int


def measure(pid: int, table: ProcessTable, proc: Path = _PROC) -> Memory:
    """The memory of ``pid`` and its descendants."""
    total = 0
    counted = 0
    for member in table.tree(pid):
        size = pss_bytes(member, proc)
        if size is not None:
            total += size
            counted += 1
    return Memory(rss_bytes(pid, proc), total if counted else None, counted)


# --- what the supervisor knows ----------------------------------------------------------------


@dataclass
class ServiceRecord:
    """Life of a service that is not a :class:`Child` (the managed PostgreSQL)."""

    state: str = ChildState.STOPPED.value
    started_at: float | None = None
    started_on: datetime | None = None
    restarts: int = 0
    requested_restarts: int = 0
    last_exit: str | None = None

    def running(self) -> None:
        self.state = ChildState.RUNNING.value
        self.started_at = time.monotonic()
        self.started_on = datetime.now(UTC)


@dataclass(frozen=True)
class SupervisorIdentity:
    """The ``kiln serve`` process: fixed for its life."""

    version: str
    data_dir: Path
    config_file: Path | None
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.monotonic)
    started_on: datetime = field(default_factory=lambda: datetime.now(UTC))


def describe_child(child: Child) -> ServiceStatus:
    kind: ServiceKind = "web" if child.spec.name == "web" else "worker"
    running = child.state in (ChildState.RUNNING, ChildState.STARTING)
    return ServiceStatus(
        name=child.spec.name,
        kind=kind,
        state=child.state.value,
        pid=child.pid if running else None,
        started_at=child.started_on if running else None,
        uptime=child.uptime,
        restarts=child.restarts,
        requested_restarts=child.requested_restarts,
        last_exit=child.last_exit,
    )


def describe_postgres(record: ServiceRecord, pid: int | None) -> ServiceStatus:
    state = record.state
    if state == ChildState.RUNNING.value and pid is None:
        state = ChildState.STOPPED.value  # it exited; the supervisor does not restart it
    running = state == ChildState.RUNNING.value
    return ServiceStatus(
        name="postgres",
        kind="postgres",
        state=state,
        pid=pid if running else None,
        started_at=record.started_on if running else None,
        uptime=time.monotonic() - record.started_at if running and record.started_at else None,
        restarts=record.restarts,
        requested_restarts=record.requested_restarts,
        last_exit=record.last_exit,
    )


def build_status(
    identity: SupervisorIdentity,
    services: Sequence[ServiceStatus],
    requests: Sequence[RequestRecord],
) -> PublishedStatus:
    """The status to publish (memory not measured yet: :func:`measure_services`)."""
    return PublishedStatus(
        format=STATUS_FORMAT,
        written_at=datetime.now(UTC),
        supervisor=SupervisorInfo(
            pid=identity.pid,
            version=identity.version,
            data_dir=str(identity.data_dir),
            config_file=str(identity.config_file) if identity.config_file else None,
            started_at=identity.started_on,
            uptime=time.monotonic() - identity.started_at,
            start_ticks=start_ticks(identity.pid),
        ),
        services=list(services),
        restart_targets=restart_targets([service.name for service in services]),
        requests=list(requests),
    )


def measure_services(status: PublishedStatus, proc: Path = _PROC) -> None:
    """Fill in the memory of the supervisor and of each running service."""
    table = ProcessTable.read(proc)
    status.supervisor.rss_bytes = rss_bytes(status.supervisor.pid, proc)
    for service in status.services:
        if service.pid is None:
            continue
        memory = measure(service.pid, table, proc)
        service.rss_bytes = memory.rss_bytes
        service.memory_bytes = memory.memory_bytes
        service.processes = memory.processes


def services_of(
    children: Supervisor | None, postgres: tuple[ServiceRecord, int | None] | None
) -> list[ServiceStatus]:
    """Every service in start order: PostgreSQL (when managed), web, workers."""
    services: list[ServiceStatus] = []
    if postgres is not None:
        services.append(describe_postgres(*postgres))
    if children is not None:
        services.extend(describe_child(child) for child in children.children)
    return services


# --- publishing -------------------------------------------------------------------------------


class StatusPublisher:
    """Keeps the status file current (module docstring). ``snapshot`` describes the present
    (called on the event loop); :meth:`run` publishes until cancelled."""

    def __init__(
        self,
        run_dir: Path,
        snapshot: Callable[[], PublishedStatus],
        *,
        interval: float = STATUS_INTERVAL,
    ) -> None:
        self.run_dir = run_dir
        self._snapshot = snapshot
        self._interval = interval
        self._changed = asyncio.Event()
        self._failing = False

    def changed(self) -> None:
        """Something changed: publish soon."""
        self._changed.set()

    async def publish_now(self) -> None:
        """Describe, measure and write the status once."""
        status = self._snapshot()
        try:
            await asyncio.to_thread(self._write, status)
        except OSError as error:
            if not self._failing:
                logger.warning("cannot write the status file in %s: %s", self.run_dir, error)
            self._failing = True
        else:
            self._failing = False

    def _write(self, status: PublishedStatus) -> None:
        measure_services(status)
        publish(self.run_dir, status)

    async def run(self) -> None:
        while True:
            self._changed.clear()
            await self.publish_now()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._interval)

    def withdraw(self) -> None:
        """Remove the status file (the supervisor is stopping)."""
        with contextlib.suppress(OSError):
            withdraw(self.run_dir)

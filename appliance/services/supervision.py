"""What ``kiln serve``'s supervisor publishes about its processes, and how other processes on
the host ask it to restart one: the contract between the supervisor (appliance.supervisor) and
the web process's admin use cases (appliance.services.operations).

It lives here, below both, because the supervisor runs the web process as its child: neither
may import the other's layer. Everything is files in the data dir's ``run/`` directory, which
``kiln serve`` wipes at start; no network, no extra service.

Status file: ``<data dir>/run/supervisor.json``
    :class:`PublishedStatus` as JSON, mode 0600. The supervisor rewrites it on every change of a
    service's state and at least every :data:`STATUS_INTERVAL` seconds, always by writing a
    temporary file in the same directory and renaming it over the old one (a reader sees the old
    or the new file, never half of one). It removes the file when it stops cleanly.

Staleness
    A reader trusts the file only if the supervisor that wrote it still runs: its pid exists and
    has the start time (``/proc/<pid>/stat`` field 22) recorded in the file, so a reused pid is
    not mistaken for it. A file whose supervisor is gone means there is no supervisor. A file
    older than :data:`STALE_AFTER` seconds whose supervisor still runs is stale: its services'
    states are reported as ``unknown``, with the file's age.

Control directory: ``<data dir>/run/control/``
    Mode 0700, created by the supervisor. A request is one JSON file (:class:`RestartRequest`),
    created under a temporary name starting with ``.`` and renamed to ``<id>.json`` once
    complete, so the supervisor never reads a partial request. The supervisor polls the
    directory every :data:`CONTROL_POLL_INTERVAL` seconds, deletes each request as it takes it
    (so it runs once), and reports its progress in the status file (:class:`RequestRecord`).
    Only processes running as Kiln's user can write there; a request names a service, nothing
    else is read from it, and anything malformed or larger than :data:`MAX_REQUEST_BYTES` is
    dropped with a log line. Requests are files rather than a socket so that they wait while
    the supervisor is busy (a worker restart can take as long as its running builds) and need
    no listener.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

#: The status file's name in the run directory.
STATUS_FILE = "supervisor.json"
#: The control directory's name in the run directory.
CONTROL_DIRECTORY = "control"
#: Version of the status file's format (a reader refuses other versions).
STATUS_FORMAT = 1
#: The supervisor rewrites its status at least this often (seconds).
STATUS_INTERVAL = 2.0
#: A status file older than this (seconds) whose supervisor still runs is stale.
STALE_AFTER = 10.0
#: The supervisor looks for requests this often (seconds).
CONTROL_POLL_INTERVAL = 0.25
#: Requests larger than this are not requests.
MAX_REQUEST_BYTES = 4096
#: Restart targets that name a group of services rather than one.
ALL_SERVICES = "all"
ALL_WORKERS = "workers"

_REQUEST_NAME = re.compile(r"^[0-9a-f]{32}\.json$")

ServiceKind = Literal["postgres", "web", "worker"]
RequestState = Literal["pending", "running", "done", "failed"]


class ServiceStatus(msgspec.Struct, kw_only=True):
    """One process the supervisor runs, as it last reported it."""

    #: ``postgres``, ``web``, ``worker-1``, ...
    name: str
    kind: ServiceKind
    #: ``starting``, ``running``, ``backoff``, ``crash-loop``, ``stopping``, ``stopped``; a
    #: reader says ``unknown`` when the report is stale.
    state: str
    pid: int | None = None
    started_at: datetime | None = None
    #: Seconds the process has been running (None when it is not running).
    uptime: float | None = None
    #: Times the supervisor started it again: after it exited on its own, or on request.
    restarts: int = 0
    #: Of :attr:`restarts`, how many an operator asked for.
    requested_restarts: int = 0
    #: How it last ended: ``exit status 1``, ``killed by SIGKILL``.
    last_exit: str | None = None
    #: Resident memory of the process itself, in bytes.
    rss_bytes: int | None = None
    #: Memory of the process and its descendants (granian's workers, PostgreSQL's backends),
    #: in bytes: their proportional set sizes, so shared pages count once.
    memory_bytes: int | None = None
    #: The process and its descendants.
    processes: int | None = None


class SupervisorInfo(msgspec.Struct, kw_only=True):
    """The ``kiln serve`` process itself."""

    pid: int
    version: str
    data_dir: str
    #: The configuration file its processes load (None: none; they use the defaults).
    config_file: str | None
    started_at: datetime
    uptime: float
    rss_bytes: int | None = None
    #: ``/proc/<pid>/stat``'s start time (clock ticks since boot): tells a reused pid apart.
    start_ticks: int | None = None


class RequestRecord(msgspec.Struct, kw_only=True):
    """A restart request the supervisor took, and how it went."""

    id: str
    service: str
    state: RequestState
    requested_by: str | None = None
    requested_at: datetime | None = None
    finished_at: datetime | None = None
    #: What happened, in words (``restarted worker-1``, or why it failed).
    message: str | None = None


class PublishedStatus(msgspec.Struct, kw_only=True):
    """The content of the status file."""

    format: int
    written_at: datetime
    supervisor: SupervisorInfo
    services: list[ServiceStatus]
    #: Names the restart control accepts (each service, ``workers``, ``all``).
    restart_targets: list[str]
    #: The latest requests, newest last.
    requests: list[RequestRecord] = msgspec.field(default_factory=list)


class RestartRequest(msgspec.Struct, kw_only=True):
    """A request file's content."""

    id: str
    action: Literal["restart"]
    service: str
    requested_by: str | None = None
    requested_at: datetime | None = None


# --- paths ------------------------------------------------------------------------------------


def status_file(run_dir: Path) -> Path:
    return run_dir / STATUS_FILE


def control_directory(run_dir: Path) -> Path:
    return run_dir / CONTROL_DIRECTORY


# --- the status file --------------------------------------------------------------------------


def publish(run_dir: Path, status: PublishedStatus) -> None:
    """Replace the status file with ``status`` atomically (mode 0600)."""
    target = status_file(run_dir)
    temporary = run_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(msgspec.json.encode(status))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def withdraw(run_dir: Path) -> None:
    """Remove the status file (the supervisor stops: there is no supervisor any more)."""
    status_file(run_dir).unlink(missing_ok=True)


@dataclass(frozen=True)
class StatusReading:
    """What a reader found: the published status (None when there is none it can use), its age
    in seconds, and why it is not usable when it is not."""

    status: PublishedStatus | None
    age: float | None = None
    problem: str | None = None

    @property
    def stale(self) -> bool:
        return self.age is not None and self.age > STALE_AFTER


def read_status(run_dir: Path, *, now: float | None = None) -> StatusReading:
    """The status file of ``run_dir``, checked as the module docstring says."""
    path = status_file(run_dir)
    try:
        raw = path.read_bytes()
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return StatusReading(None, problem="no supervisor has published a status")
    except OSError as error:
        return StatusReading(None, problem=f"cannot read {path}: {error.strerror}")
    try:
        status = msgspec.json.decode(raw, type=PublishedStatus)
    except msgspec.DecodeError as error:
        return StatusReading(None, problem=f"{path} is not a status this Kiln reads: {error}")
    if status.format != STATUS_FORMAT:
        return StatusReading(
            None, problem=f"{path} has format {status.format}; this Kiln reads {STATUS_FORMAT}"
        )
    supervisor = status.supervisor
    if not process_is(supervisor.pid, supervisor.start_ticks):
        return StatusReading(
            None,
            problem=f"the supervisor that wrote {path} (pid {supervisor.pid}) is not running",
        )
    age = max(0.0, (time.time() if now is None else now) - modified)
    return StatusReading(status, age=age)


# --- requests ---------------------------------------------------------------------------------


def new_request(service: str, requested_by: str | None, requested_at: datetime) -> RestartRequest:
    return RestartRequest(
        id=uuid.uuid4().hex,
        action="restart",
        service=service,
        requested_by=requested_by,
        requested_at=requested_at,
    )


def submit(run_dir: Path, request: RestartRequest) -> Path:
    """Put ``request`` in the control directory (atomically); the path it got. Raises
    :class:`FileNotFoundError` when the directory does not exist (no supervisor made it)."""
    directory = control_directory(run_dir)
    temporary = directory / f".{request.id}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(msgspec.json.encode(request))
        target = directory / f"{request.id}.json"
        os.rename(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return target


def prepare_control_directory(run_dir: Path) -> Path:
    """Create the control directory (0700), empty."""
    directory = control_directory(run_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for leftover in directory.iterdir():
        with contextlib.suppress(OSError):
            leftover.unlink()
    return directory


@dataclass(frozen=True)
class TakenRequest:
    """A request file the supervisor took: the request, or why it is not one."""

    name: str
    request: RestartRequest | None
    problem: str | None = None


def take_requests(run_dir: Path) -> Iterator[TakenRequest]:
    """Every complete request in the control directory, oldest first, each deleted as it is
    taken (so that it runs once). Files that are not requests are deleted and reported."""
    directory = control_directory(run_dir)
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    ready = [entry for entry in entries if not entry.name.startswith(".")]
    ready.sort(key=lambda entry: (_mtime(entry), entry.name))
    for entry in ready:
        yield _take(Path(entry.path))


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _take(path: Path) -> TakenRequest:
    name = path.name
    try:
        if not _REQUEST_NAME.match(name):
            return TakenRequest(name, None, "not a request file name")
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as stream:
            raw = stream.read(MAX_REQUEST_BYTES + 1)
        if len(raw) > MAX_REQUEST_BYTES:
            return TakenRequest(name, None, f"larger than {MAX_REQUEST_BYTES} bytes")
        try:
            request = msgspec.json.decode(raw, type=RestartRequest)
        except msgspec.DecodeError as error:
            return TakenRequest(name, None, f"not a restart request: {error}")
        if f"{request.id}.json" != name:
            return TakenRequest(name, None, "its id does not match its file name")
        return TakenRequest(name, request)
    except OSError as error:
        return TakenRequest(name, None, f"cannot be read: {error.strerror}")
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


# --- processes --------------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (``/proc/<pid>/stat`` field 22, clock ticks since boot);
    None when there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_is(pid: int, ticks: int | None) -> bool:
    """Whether process ``pid`` runs and (when ``ticks`` is known) is the one that started at
    ``ticks``; a zombie does not count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return _signalable(pid)
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or (len(fields) > 19 and fields[19] == str(ticks))


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restart_targets(service_names: Sequence[str]) -> list[str]:
    """What may be restarted when these services run: each, ``workers`` (when there are any),
    ``all``."""
    targets = list(service_names)
    if any(name.startswith("worker-") for name in service_names):
        targets.append(ALL_WORKERS)
    targets.append(ALL_SERVICES)
    return targets

"""The admin API (``/api/v1/admin/...``): its paths and the objects it answers with.

Operators only (an admin account, or a token with the admin role on ``*/*``). The types read
what the console shows and ignore the rest, like :mod:`tui.models`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tui import wire
from tui.wire import JSON

ADMIN = "/api/v1/admin"
SERVICES = f"{ADMIN}/services/"
QUEUE = f"{ADMIN}/queue/"
JOBS = f"{ADMIN}/jobs/"
CONFIGURATION = f"{ADMIN}/config/"
LOGS = f"{ADMIN}/logs/"
USERS = f"{ADMIN}/users/"
STORAGE = f"{ADMIN}/storage/"
#: Prometheus metrics (not under /api): the store's disk comes from here.
METRICS = "/metrics"


def restart_path(service: str) -> str:
    return f"{SERVICES}{service}/restart/"


def job_path(job_id: int, action: str) -> str:
    return f"{JOBS}{job_id}/{action}/"


# --- services ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One process the supervisor runs: ``postgres``, ``web``, ``worker-1``..."""

    name: str
    kind: str
    state: str
    pid: int | None
    uptime: float | None
    restarts: int
    last_exit: str | None
    memory: int | None

    @classmethod
    def from_json(cls, data: JSON) -> Service:
        return cls(
            name=wire.text(data, "name"),
            kind=str(data.get("kind") or ""),
            state=str(data.get("state") or "unknown"),
            pid=wire.optional_number(data, "pid"),
            uptime=wire.optional_float(data, "uptime"),
            restarts=wire.optional_number(data, "restarts") or 0,
            last_exit=wire.optional_text(data, "last_exit"),
            memory=wire.optional_number(data, "memory_bytes")
            or wire.optional_number(data, "rss_bytes"),
        )


@dataclass(frozen=True)
class RestartRecord:
    """A restart request and how it went."""

    id: str
    service: str
    state: str
    message: str | None
    requested_at: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> RestartRecord:
        return cls(
            id=wire.text(data, "id"),
            service=wire.text(data, "service"),
            state=str(data.get("state") or ""),
            message=wire.optional_text(data, "message"),
            requested_at=wire.moment(data, "requested_at"),
        )


@dataclass(frozen=True)
class Services:
    """What the supervisor reports (``supervised`` is false under a bare ``kiln web``)."""

    supervised: bool
    message: str
    stale: bool
    version: str | None
    data_dir: str | None
    config_file: str | None
    supervisor_pid: int | None
    supervisor_uptime: float | None
    services: tuple[Service, ...]
    restart_targets: tuple[str, ...]
    requests: tuple[RestartRecord, ...]

    @classmethod
    def from_json(cls, data: JSON) -> Services:
        supervisor = wire.mapping(data.get("supervisor"))
        return cls(
            supervised=bool(data.get("supervised")),
            message=str(data.get("message") or ""),
            stale=bool(data.get("stale")),
            version=wire.optional_text(supervisor, "version"),
            data_dir=wire.optional_text(supervisor, "data_dir"),
            config_file=wire.optional_text(supervisor, "config_file"),
            supervisor_pid=wire.optional_number(supervisor, "pid"),
            supervisor_uptime=wire.optional_float(supervisor, "uptime"),
            services=tuple(Service.from_json(item) for item in wire.objects(data.get("services"))),
            restart_targets=wire.strings(data.get("restart_targets")),
            requests=tuple(
                RestartRecord.from_json(item) for item in wire.objects(data.get("requests"))
            ),
        )


@dataclass(frozen=True)
class RestartRequested:
    """A restart handed to the supervisor."""

    id: str
    restarts: tuple[str, ...]
    message: str

    @classmethod
    def from_json(cls, data: JSON) -> RestartRequested:
        return cls(
            id=wire.text(data, "id"),
            restarts=wire.strings(data.get("restarts")),
            message=str(data.get("message") or "restart requested"),
        )


# --- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStatistics:
    """The job queue and the builds at a glance."""

    jobs_by_status: dict[str, int]
    builds_by_status: dict[str, int]
    oldest_queued_build: int | None
    oldest_queued_age: float | None
    live_workers: int

    @classmethod
    def from_json(cls, data: JSON) -> QueueStatistics:
        oldest = wire.mapping(data.get("oldest_queued_build"))
        return cls(
            jobs_by_status=_counts(data.get("jobs_by_status")),
            builds_by_status=_counts(data.get("builds_by_status")),
            oldest_queued_build=wire.optional_number(oldest, "build_id"),
            oldest_queued_age=wire.optional_float(oldest, "age_seconds"),
            live_workers=wire.optional_number(data, "live_workers") or 0,
        )


def _counts(value: Any) -> dict[str, int]:
    counts = wire.mapping(value)
    return {str(key): int(number) for key, number in counts.items() if isinstance(number, int)}


@dataclass(frozen=True)
class Job:
    """One job of the queue."""

    id: int
    task: str
    queue: str
    status: str
    attempts: int
    args: dict[str, Any]
    deferred_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def from_json(cls, data: JSON) -> Job:
        return cls(
            id=wire.number(data, "id"),
            task=str(data.get("task") or ""),
            queue=str(data.get("queue") or ""),
            status=str(data.get("status") or ""),
            attempts=wire.optional_number(data, "attempts") or 0,
            args=dict(wire.mapping(data.get("args"))),
            deferred_at=wire.moment(data, "deferred_at"),
            started_at=wire.moment(data, "started_at"),
            ended_at=wire.moment(data, "ended_at"),
        )


# --- the store's disk -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreDisk:
    """The file system of a store directory: its size, what is used and free, and how much of
    it the builds take (``kiln_store_*`` in ``/metrics``)."""

    host: str
    path: str
    total: int
    used: int
    free: int
    store_size: int | None
    #: Bytes used over the last hours, oldest first (the server's samples; empty when the
    #: server keeps none and the console samples it itself).
    trend: tuple[float, ...] = ()

    @classmethod
    def from_json(cls, data: JSON) -> StoreDisk:
        """One store of ``GET /api/v1/admin/storage/``."""
        return cls(
            host=wire.text(data, "host"),
            path=wire.text(data, "path"),
            total=wire.number(data, "total"),
            used=wire.number(data, "used"),
            free=wire.number(data, "free"),
            store_size=wire.optional_number(data, "store_size"),
            trend=tuple(
                float(wire.number(point, "used")) for point in wire.objects(data.get("trend"))
            ),
        )


#: ``/metrics`` families of a store's disk, and the :class:`StoreDisk` field each fills.
_STORE_METRICS = {
    "kiln_store_filesystem_size_bytes": "total",
    "kiln_store_filesystem_used_bytes": "used",
    "kiln_store_filesystem_free_bytes": "free",
    "kiln_store_size_bytes": "store_size",
}
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-z_]+)="(?P<value>(?:[^"\\]|\\.)*)"')


def store_disks(metrics: str) -> list[StoreDisk]:
    """The stores' disks in a Prometheus text exposition (``GET /metrics``), in the order the
    server lists them."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for line in metrics.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or sample["name"] not in _STORE_METRICS:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(sample["labels"])}
        try:
            value = int(float(sample["value"]))
        except ValueError:
            continue
        key = (labels.get("host", ""), labels.get("path", ""))
        found.setdefault(key, {})[_STORE_METRICS[sample["name"]]] = value
    return [
        StoreDisk(
            host=host,
            path=path,
            total=values.get("total", 0),
            used=values.get("used", 0),
            free=values.get("free", 0),
            store_size=values.get("store_size"),
        )
        for (host, path), values in found.items()
        if "total" in values
    ]


# --- the configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigOption:
    """One option as it is in effect: value (secrets masked) and where it comes from."""

    section: str
    name: str
    value: Any
    source: str
    secret: bool
    ignored: str | None
    help: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @classmethod
    def from_json(cls, section: str, data: JSON) -> ConfigOption:
        return cls(
            section=section,
            name=wire.text(data, "name"),
            value=data.get("value"),
            source=str(data.get("source") or "default"),
            secret=bool(data.get("secret")),
            ignored=wire.optional_text(data, "ignored"),
            help=str(data.get("help") or ""),
        )


@dataclass(frozen=True)
class ConfigSection:
    """The options of one configurable class, and what restarts after a change to them."""

    name: str
    note: str | None
    restart: tuple[str, ...]
    options: tuple[ConfigOption, ...]

    @classmethod
    def from_json(cls, data: JSON) -> ConfigSection:
        name = wire.text(data, "class")
        return cls(
            name=name,
            note=wire.optional_text(data, "note"),
            restart=wire.strings(data.get("restart")),
            options=tuple(
                ConfigOption.from_json(name, item) for item in wire.objects(data.get("options"))
            ),
        )


@dataclass(frozen=True)
class ConfigProblem:
    severity: str
    message: str
    option: str | None

    @classmethod
    def from_json(cls, data: JSON) -> ConfigProblem:
        return cls(
            severity=str(data.get("severity") or "error"),
            message=str(data.get("message") or ""),
            option=wire.optional_text(data, "option"),
        )


@dataclass(frozen=True)
class Configuration:
    """The configuration a Kiln process started now would load, and the file changes go to."""

    data_dir: str
    config_file: str
    config_file_exists: bool
    config_file_writable: bool
    sections: tuple[ConfigSection, ...]
    problems: tuple[ConfigProblem, ...]

    @classmethod
    def from_json(cls, data: JSON) -> Configuration:
        return cls(
            data_dir=str(data.get("data_dir") or ""),
            config_file=str(data.get("config_file") or ""),
            config_file_exists=bool(data.get("config_file_exists")),
            config_file_writable=bool(data.get("config_file_writable")),
            sections=tuple(
                ConfigSection.from_json(item) for item in wire.objects(data.get("sections"))
            ),
            problems=tuple(
                ConfigProblem.from_json(item) for item in wire.objects(data.get("problems"))
            ),
        )


@dataclass(frozen=True)
class RestartAdvice:
    """What must restart for a change to take effect, and what the console can restart."""

    needed: bool
    services: tuple[str, ...]
    targets: tuple[str, ...]
    message: str

    @classmethod
    def from_json(cls, data: JSON) -> RestartAdvice:
        return cls(
            needed=bool(data.get("needed")),
            services=wire.strings(data.get("services")),
            targets=wire.strings(data.get("targets")),
            message=str(data.get("message") or ""),
        )


@dataclass(frozen=True)
class ConfigurationChange:
    """What a change did, or (dry run) would do."""

    section: str
    option: str
    value: Any
    previous_value: Any
    changed: bool
    dry_run: bool
    written: bool
    config_file: str
    action: str
    line: int
    line_text: str
    restart: RestartAdvice
    message: str

    @classmethod
    def from_json(cls, data: JSON) -> ConfigurationChange:
        return cls(
            section=wire.text(data, "class"),
            option=wire.text(data, "option"),
            value=data.get("value"),
            previous_value=data.get("previous_value"),
            changed=bool(data.get("changed")),
            dry_run=bool(data.get("dry_run")),
            written=bool(data.get("written")),
            config_file=str(data.get("config_file") or ""),
            action=str(data.get("action") or ""),
            line=wire.optional_number(data, "line") or 0,
            line_text=str(data.get("line_text") or ""),
            restart=RestartAdvice.from_json(wire.mapping(data.get("restart"))),
            message=str(data.get("message") or ""),
        )


# --- logs -------------------------------------------------------------------------------------

#: Log levels, lowest first.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LogRecord:
    """One line a service logged."""

    time: datetime | None
    service: str
    level: str
    logger: str
    message: str

    @classmethod
    def from_json(cls, data: JSON) -> LogRecord:
        return cls(
            time=wire.moment(data, "time"),
            service=str(data.get("service") or ""),
            level=str(data.get("level") or "INFO").upper(),
            logger=str(data.get("logger") or ""),
            message=str(data.get("message") or ""),
        )


@dataclass(frozen=True)
class ServiceLogs:
    """The latest records, oldest first, and every service that has (or may have) a log."""

    records: tuple[LogRecord, ...]
    services: tuple[str, ...]

    @classmethod
    def from_json(cls, data: JSON) -> ServiceLogs:
        return cls(
            records=tuple(LogRecord.from_json(item) for item in wire.objects(data.get("records"))),
            services=wire.strings(data.get("services")),
        )


def at_least(level: str, threshold: str | None) -> bool:
    """Whether ``level`` is ``threshold`` or more severe (no threshold: every level)."""
    if threshold is None or threshold not in LEVELS:
        return True
    rank = LEVELS.index(level) if level in LEVELS else LEVELS.index("INFO")
    return rank >= LEVELS.index(threshold)

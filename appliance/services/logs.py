"""The logs of this host's Kiln for the admin API: the latest records, and new ones as they are
written, filtered by service and level.

Where they come from
    Kiln's processes write ``<data dir>/logs/<service>.jsonl`` (with rotated ``.1``, ``.2``;
    the format and the rotation: appliance.common.service_log): ``supervisor``, ``web``,
    ``worker-1``, ... under ``kiln serve``; ``web`` and ``worker`` when started on their own.
    The managed PostgreSQL's own log, ``<data dir>/pg/postgres.log`` (and ``.1``), is the
    service ``postgres``: each line starts with PostgreSQL's default prefix (``2025-01-02
    03:04:05.678 UTC [pid] LOG:  ...``); its severity gives the level (``DEBUG1``-``5``: DEBUG;
    ``LOG``, ``INFO``, ``NOTICE``: INFO; ``WARNING``; ``ERROR``; ``FATAL``, ``PANIC``:
    CRITICAL; Procrastinate's "already queued" unique-key errors, which are Kiln working as
    intended, are INFO), and the lines that follow a message (``DETAIL``, ``HINT``, ``STATEMENT``,
    ``CONTEXT``, continued lines) belong to it; so does initdb's output to the line Kiln writes
    before it (``--- initdb (time)``, like ``--- start (time)`` before each start). A time
    zone PostgreSQL names by abbreviation other than UTC/GMT is taken as this host's local
    time. A file that does not exist is an empty log (an external database has no
    ``postgres`` log; ``kiln web`` on its own has no supervisor's).

Which services may be asked for
    ``supervisor``, ``postgres``, ``web``, every service the supervisor reports, and every
    service with a log file (:func:`known_services`). Any other name is refused (400) with the
    list, as is a level that is not one of :data:`LEVELS`.

The latest records (:func:`latest_records`)
    Each file is read backwards from its end, a block at a time, only until ``lines`` records
    at the level asked for are found (then its older rotated files, if needed): a file is read
    whole only when it has too few such records, and files are a few MB at most. The services'
    records are merged by time; the answer holds the latest ``lines``, oldest first. A line
    still being written (no newline yet) is not read; a line that is not a record is skipped.

Following (:func:`start_following`, :meth:`LogFollow.stream`)
    Where each file ends is noted first; the latest ``lines`` records before those points are
    sent, then every :data:`FOLLOW_POLL_SECONDS` whatever each file has grown by, as JSON lines
    (one record per line). A file that was rotated is read to its end and the new file at the
    path from its start; a file that shrank is read again from its start. While nothing is
    written, an empty line goes out every :data:`KEEPALIVE_SECONDS` (so proxies keep the
    connection and a client that left is noticed). The stream ends when the client closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Protocol

import msgspec

from appliance.common.errors import KilnError
from appliance.common.paths import DataDir
from appliance.common.service_log import BACKUPS, SERVICE_NAME, SUFFIX, log_file, rotated
from appliance.schemas import api as wire
from appliance.services.operations import Installation
from appliance.services.supervision import read_status

#: Log levels, lowest first (Python's names).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Records answered when the request does not say how many, and the most it may ask for.
DEFAULT_LINES = 100
MAX_LINES = 10_000
#: How often followed files are looked at, in seconds.
FOLLOW_POLL_SECONDS = 0.5
#: An idle follow sends an empty line this often, in seconds.
KEEPALIVE_SECONDS = 15.0
#: Bytes read at a time when reading a file backwards.
BLOCK_BYTES = 64 * 1024

#: Services that always may be asked for, in the order listings show them.
FIXED_SERVICES = ("supervisor", "postgres", "web")
POSTGRES = "postgres"
#: Rotated files of the managed PostgreSQL's log (appliance.supervisor.postgres keeps one).
POSTGRES_BACKUPS = 1

_RANK = {level: rank for rank, level in enumerate(LEVELS)}
_LOG_FILE_NAME = re.compile(rf"^(?P<service>.+){re.escape(SUFFIX)}(?:\.\d+)?$")


class InvalidLogFilter(KilnError):
    """The service or level asked for does not exist."""

    code = "invalid_log_filter"


# --- which logs ----------------------------------------------------------------------------------


def known_services(installation: Installation) -> list[str]:
    """Every name the ``service`` filter takes (see the module docstring)."""
    names = set(FIXED_SERVICES)
    status = read_status(installation.run_dir).status
    if status is not None:
        names.update(service.name for service in status.services)
    with contextlib.suppress(OSError):
        for entry in os.scandir(installation.data_dir.logs):
            found = _LOG_FILE_NAME.match(entry.name)
            if found and SERVICE_NAME.match(found["service"]):
                names.add(found["service"])
    return sorted(names, key=_listing_order)


def _listing_order(name: str) -> tuple[int, str, int]:
    if name in FIXED_SERVICES:
        return (FIXED_SERVICES.index(name), "", 0)
    stem, _, number = name.rpartition("-")
    if stem and number.isdigit():
        return (len(FIXED_SERVICES), stem, int(number))
    return (len(FIXED_SERVICES), name, 0)


@dataclass(frozen=True)
class LogFilter:
    """The services whose logs are read and the lowest level shown (None: every level)."""

    services: tuple[str, ...]
    level: str | None
    known: tuple[str, ...]

    def admits(self, record: wire.ServiceLogRecord) -> bool:
        return self.level is None or _RANK.get(record.level, 1) >= _RANK[self.level]


def log_filter(installation: Installation, service: str | None, level: str | None) -> LogFilter:
    """The checked filter; raises :class:`InvalidLogFilter` naming what is allowed."""
    known = tuple(known_services(installation))
    chosen = (service or "").strip()
    if chosen and chosen not in known:
        raise InvalidLogFilter(
            f"no service {chosen[:80]!r} has a log here; known services: {', '.join(known)}"
        )
    wanted = (level or "").strip().upper() or None
    if wanted is not None and wanted not in _RANK:
        raise InvalidLogFilter(
            f"level {(level or '')[:40]!r} is not a log level; allowed: {', '.join(LEVELS)} "
            "(records at that level and above are shown)"
        )
    return LogFilter(services=(chosen,) if chosen else known, level=wanted, known=known)


def _check_lines(lines: int) -> int:
    if not 0 <= lines <= MAX_LINES:
        raise InvalidLogFilter(f"lines must be from 0 to {MAX_LINES}, not {lines}")
    return lines


# --- the formats -----------------------------------------------------------------------------


class LogFormat(Protocol):
    """How a file's lines become records."""

    def backward(self, lines: Iterator[str]) -> Iterator[wire.ServiceLogRecord]:
        """The records of ``lines`` (newest first), newest first."""
        ...

    def forward(self, lines: list[str]) -> list[wire.ServiceLogRecord]:
        """The records of new ``lines`` (in file order), in file order."""
        ...


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time as an aware datetime (a time without offset is UTC); None if not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def normal_level(name: object) -> str:
    """A level name as one of :data:`LEVELS` (``WARN``: WARNING; unknown ones: INFO)."""
    text = str(name or "").upper()
    if text in _RANK:
        return text
    return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(text, "INFO")


@dataclass(frozen=True)
class JsonLines:
    """Kiln's own log files (appliance.common.service_log)."""

    service: str

    def record(self, line: str) -> wire.ServiceLogRecord | None:
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        moment = parse_time(data.get("time"))
        if moment is None:
            return None
        pid = data.get("pid")
        return wire.ServiceLogRecord(
            time=moment,
            service=self.service,
            level=normal_level(data.get("level")),
            logger=str(data.get("logger") or ""),
            message=str(data.get("message") or ""),
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        )

    def backward(self, lines: Iterator[str]) -> Iterator[wire.ServiceLogRecord]:
        for line in lines:
            record = self.record(line)
            if record is not None:
                yield record

    def forward(self, lines: list[str]) -> list[wire.ServiceLogRecord]:
        return [record for line in lines if (record := self.record(line)) is not None]


_PG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)"
    r"(?: (?P<zone>[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d\d(?::?\d\d)?))?"
    r" \[(?P<pid>\d+)\] (?P<severity>[A-Z][A-Z0-9]*):\s+(?P<message>.*)$"
)
#: What Kiln writes into the log before it runs initdb or starts the server, in local time
#: (appliance.supervisor.postgres); initdb's own output follows its marker.
_PG_MARKER = re.compile(r"^--- (?P<step>[a-z]+) \((?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\)$")
_PG_STEPS = {"start": "Kiln started the server", "initdb": "Kiln created the cluster (initdb)"}
_PG_LEVELS = {
    **{f"DEBUG{n}": "DEBUG" for n in range(1, 6)},
    "DEBUG": "DEBUG",
    "LOG": "INFO",
    "INFO": "INFO",
    "NOTICE": "INFO",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
    "PANIC": "CRITICAL",
}

#: An ERROR PostgreSQL logs that is Kiln working as intended: Procrastinate refusing a second
#: copy of a job that is already waiting (its queueing lock; a periodic job's next tick, a
#: deletion asked twice). Shown as INFO, with :data:`_PG_EXPECTED_NOTE`.
_PG_EXPECTED = re.compile(r'violates unique constraint "procrastinate_jobs_queueing_lock_idx')
_PG_EXPECTED_NOTE = "(expected: that job is already queued, so no second copy was added)"


def _pg_time(text: str, zone: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if zone is None:
        return moment.astimezone()  # no zone: this host's local time
    if zone.upper() in ("UTC", "GMT", "Z", "UCT"):
        return moment.replace(tzinfo=UTC)
    offset = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", zone)
    if offset:
        sign = 1 if offset[1] == "+" else -1
        delta = timedelta(hours=int(offset[2]), minutes=int(offset[3] or 0))
        return moment.replace(tzinfo=timezone(sign * delta))
    return moment.astimezone()


@dataclass
class PostgresLog:
    """The managed PostgreSQL's own log (see the module docstring)."""

    service: str = POSTGRES
    #: While following: the last record, which lines read later may still continue.
    _last: wire.ServiceLogRecord | None = field(default=None, init=False, repr=False)

    def start(self, line: str) -> wire.ServiceLogRecord | None:
        """The record ``line`` begins, or None when it continues the one before."""
        found = _PG_LINE.match(line)
        if found is not None and found["severity"] in _PG_LEVELS:
            moment = _pg_time(found["time"], found["zone"])
            if moment is not None:
                level, message = _PG_LEVELS[found["severity"]], found["message"]
                if level == "ERROR" and _PG_EXPECTED.search(message):
                    level, message = "INFO", f"{message} {_PG_EXPECTED_NOTE}"
                return wire.ServiceLogRecord(
                    time=moment,
                    service=self.service,
                    level=level,
                    logger=POSTGRES,
                    message=message,
                    pid=int(found["pid"]),
                )
        marker = _PG_MARKER.match(line)
        if marker is not None:
            moment = _pg_time(marker["time"], None)
            if moment is not None:
                return wire.ServiceLogRecord(
                    time=moment,
                    service=self.service,
                    level="INFO",
                    logger="kiln.supervisor.postgres",
                    message=_PG_STEPS.get(marker["step"], f"Kiln: {marker['step']}"),
                )
        return None

    @staticmethod
    def continued(line: str) -> str:
        """A continuation line as it reads in a message (``DETAIL:  ...`` without its prefix)."""
        found = _PG_LINE.match(line)
        if found is not None:
            return f"{found['severity']}:  {found['message']}"
        return line

    def backward(self, lines: Iterator[str]) -> Iterator[wire.ServiceLogRecord]:
        following: list[str] = []
        for line in lines:
            record = self.start(line)
            if record is None:
                following.append(self.continued(line))
                continue
            if following:
                rest = "\n".join(reversed(following))
                record = msgspec.structs.replace(record, message=f"{record.message}\n{rest}")
                following.clear()
            yield record
        # Lines before the first record whose beginning is gone: nothing to attach them to.

    def forward(self, lines: list[str]) -> list[wire.ServiceLogRecord]:
        """Records of new lines. A record is complete only when the next begins, but it is sent
        with the lines read so far; lines that continue it later become a record of their own
        with its time, level and pid."""
        records: list[wire.ServiceLogRecord] = []
        current: wire.ServiceLogRecord | None = None
        extra: list[str] = []

        def close() -> None:
            nonlocal current
            if current is None:
                return
            if extra:
                current = msgspec.structs.replace(
                    current, message="\n".join([current.message, *extra])
                )
                extra.clear()
            records.append(current)
            self._last = current
            current = None

        for line in lines:
            record = self.start(line)
            if record is not None:
                close()
                current = record
            elif current is not None:
                extra.append(self.continued(line))
            else:
                base = self._last
                records.append(
                    wire.ServiceLogRecord(
                        time=base.time if base is not None else datetime.now(UTC),
                        service=self.service,
                        level=base.level if base is not None else "INFO",
                        logger=POSTGRES,
                        message=self.continued(line),
                        pid=base.pid if base is not None else None,
                    )
                )
        close()
        return records


@dataclass(frozen=True)
class LogSource:
    """One service's log: its file, how many rotated files it keeps, and its format."""

    service: str
    path: Path
    backups: int
    form: LogFormat

    def files(self) -> list[Path]:
        """The file and its rotated files, newest first."""
        return [rotated(self.path, number) for number in range(self.backups + 1)]


def sources(data_dir: DataDir, services: Iterable[str]) -> list[LogSource]:
    """Where the logs of ``services`` are (see the module docstring)."""
    found = []
    for service in services:
        if service == POSTGRES:
            found.append(LogSource(service, data_dir.postgres_log, POSTGRES_BACKUPS, PostgresLog()))
        else:
            found.append(
                LogSource(service, log_file(data_dir.logs, service), BACKUPS, JsonLines(service))
            )
    return found


# --- the latest records ----------------------------------------------------------------------


def lines_backward(
    path: Path, *, end: int | None = None, block: int = BLOCK_BYTES
) -> Iterator[str]:
    """The complete lines of ``path`` before byte ``end`` (default: its end), last first, read
    a block at a time from the end. A last line without its newline is left out (it is still
    being written); a missing file has no lines."""
    try:
        handle = path.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        return
    with handle:
        position = handle.seek(0, os.SEEK_END) if end is None else end
        buffer = b""
        complete = False
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            if not complete:
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    continue
                buffer = buffer[:cut]
                complete = True
            parts = buffer.split(b"\n")
            buffer = parts[0]
            for part in reversed(parts[1:]):
                if part.strip():
                    yield part.decode("utf-8", "replace")
        if complete and buffer.strip():
            yield buffer.decode("utf-8", "replace")


def _source_backward(
    source: LogSource, log: LogFilter, end: int | None = None
) -> Iterator[wire.ServiceLogRecord]:
    """The source's records at the filter's level, newest first, across its rotated files;
    ``end``: where its current file is taken to end."""
    for number, path in enumerate(source.files()):
        lines = lines_backward(path, end=end if number == 0 else None)
        for record in source.form.backward(lines):
            if log.admits(record):
                yield record


def _latest(
    chosen: list[LogSource], log: LogFilter, lines: int, ends: dict[str, int | None]
) -> list[wire.ServiceLogRecord]:
    if lines == 0:
        return []
    newest_first = [
        islice(_source_backward(source, log, ends.get(source.service)), lines) for source in chosen
    ]
    merged = heapq.merge(*newest_first, key=lambda record: record.time, reverse=True)
    latest = list(islice(merged, lines))
    latest.reverse()
    return latest


def latest_records(
    installation: Installation,
    *,
    service: str | None = None,
    level: str | None = None,
    lines: int = DEFAULT_LINES,
) -> wire.ServiceLogs:
    """The latest ``lines`` records of ``service`` (None: every service) at ``level`` or above,
    oldest first; raises :class:`InvalidLogFilter` for an unknown service or level."""
    log = log_filter(installation, service, level)
    count = _check_lines(lines)
    chosen = sources(installation.data_dir, log.services)
    return wire.ServiceLogs(records=_latest(chosen, log, count, {}), services=list(log.known))


# --- following ---------------------------------------------------------------------------------


class _Tail:
    """One followed file: read from where it was, across rotations (module docstring)."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        self.path = source.path
        self._handle: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""

    def begin(self) -> int:
        """Open the file (if it exists) at the end of its last complete line; that offset (0
        for a file that does not exist: it is read from its start once it does)."""
        try:
            handle = self.path.open("rb")
        except (FileNotFoundError, NotADirectoryError):
            return 0
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - BLOCK_BYTES)
        handle.seek(start)
        tail = handle.read(size - start)
        cut = tail.rfind(b"\n")
        offset = start + cut + 1 if cut >= 0 else (0 if start == 0 else size)
        handle.seek(offset)
        self._adopt(handle)
        return offset

    def _adopt(self, handle: BinaryIO) -> None:
        found = os.fstat(handle.fileno())
        self._handle, self._identity, self._partial = handle, (found.st_dev, found.st_ino), b""

    def read(self) -> list[wire.ServiceLogRecord]:
        """The records written since the last read."""
        lines = self._drain()
        try:
            found = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return self.source.form.forward(lines)
        if self._handle is None or (found.st_dev, found.st_ino) != self._identity:
            self.close()  # rotated: the old file was read to its end above
            try:
                self._adopt(self.path.open("rb"))
            except (FileNotFoundError, NotADirectoryError):
                return self.source.form.forward(lines)
            lines += self._drain()
        elif self._handle is not None and found.st_size < self._handle.tell():
            self._handle.seek(0)  # shrunk: written anew
            self._partial = b""
            lines += self._drain()
        return self.source.form.forward(lines)

    def _drain(self) -> list[str]:
        if self._handle is None:
            return []
        data = self._partial + self._handle.read()
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle, self._identity, self._partial = None, None, b""


class LogFollow:
    """A follow under way: the records to send first, then new ones (module docstring)."""

    def __init__(
        self,
        log: LogFilter,
        tails: list[_Tail],
        first: list[wire.ServiceLogRecord],
        *,
        poll: float = FOLLOW_POLL_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.log = log
        self.first = first
        self._tails = tails
        self._poll = poll
        self._keepalive = keepalive
        self._lock = threading.Lock()

    def read(self) -> list[wire.ServiceLogRecord]:
        """New records of every followed file at the filter's level, by time (blocking)."""
        with self._lock:
            found = [
                record for tail in self._tails for record in tail.read() if self.log.admits(record)
            ]
        found.sort(key=lambda record: record.time)
        return found

    def close(self) -> None:
        with self._lock:
            for tail in self._tails:
                tail.close()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """JSON lines: the first records, then new ones until the client leaves."""
        try:
            if self.first:
                yield encode_lines(self.first)
            quiet_since = time.monotonic()
            while True:
                await asyncio.sleep(self._poll)
                records = await asyncio.to_thread(self.read)
                if records:
                    yield encode_lines(records)
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= self._keepalive:
                    yield b"\n"
                    quiet_since = time.monotonic()
        finally:
            await asyncio.to_thread(self.close)


def encode_lines(records: Iterable[wire.ServiceLogRecord]) -> bytes:
    """Records as JSON lines (each ends with a newline)."""
    return b"".join(msgspec.json.encode(record) + b"\n" for record in records)


def start_following(
    installation: Installation,
    *,
    service: str | None = None,
    level: str | None = None,
    lines: int = DEFAULT_LINES,
    poll: float = FOLLOW_POLL_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> LogFollow:
    """Check the filter (:class:`InvalidLogFilter`), note where each file ends, and read the
    latest ``lines`` records before that (blocking; run it on a thread)."""
    log = log_filter(installation, service, level)
    count = _check_lines(lines)
    chosen = sources(installation.data_dir, log.services)
    tails = [_Tail(source) for source in chosen]
    ends: dict[str, int | None] = {tail.source.service: tail.begin() for tail in tails}
    first = _latest(chosen, log, count, ends)
    return LogFollow(log, tails, first, poll=poll, keepalive=keepalive)

"""Kiln's own processes keep their log where the admin API can read it: one file of JSON lines
per service, ``<data dir>/logs/<service>.jsonl``.

Who writes
    The long-running roles, set up where the command line configures logging (appliance.cli):
    ``kiln serve`` writes ``supervisor.jsonl``, ``kiln web`` ``web.jsonl`` and ``kiln worker``
    ``worker.jsonl``. Under ``kiln serve`` each child is told the name the supervisor knows it by
    in :data:`SERVICE_NAME_VARIABLE` (``web``, ``worker-1``, ``worker-2``, ...), so each worker
    has its own file. One-shot commands (``kiln user``, ``kiln migrate``, ...) write no file. The
    file gets the same records as standard error (``--log-level``), which stays as it was (the
    journal under systemd); nothing is logged that was not logged before.

What a line holds
    One JSON object per record: ``time`` (ISO 8601, UTC, milliseconds), ``service``,
    ``level`` (``DEBUG`` ... ``CRITICAL``), ``logger`` (``kiln.web``, ``procrastinate.worker``,
    ...), ``message`` (with the traceback, when there is one, after a newline) and ``pid``.

Rotation, by size
    A file about to grow beyond :data:`MAX_BYTES` is moved to ``<service>.jsonl.1`` (the older
    ones to ``.2``, ...), keeping :data:`BACKUPS` old files: at most ``(BACKUPS + 1) *
    MAX_BYTES`` per service. Several processes may write one file (granian's main process and
    its worker processes all write ``web.jsonl``): each record is one ``O_APPEND`` write of a
    whole line, and the process that finds the file too large rotates it under an exclusive
    lock (``flock`` on ``<service>.jsonl.lock``), after checking again that the file at the path
    is still too large; the others notice that the path names another file than the one they
    have open, and open the new one.

Logging never stops a process
    A file that cannot be written (no space, no permission) is reported once on standard error;
    logging goes on to standard error, and the file is tried again with the next record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Suffix of a service's log file in the logs directory.
SUFFIX = ".jsonl"
#: A file grows to about this many bytes before it is rotated.
MAX_BYTES = 4 * 1024 * 1024
#: Rotated files kept per service (``.1`` is the newest).
BACKUPS = 2
#: ``kiln serve`` tells each child its service name in this environment variable.
SERVICE_NAME_VARIABLE = "KILN_SERVICE_NAME"
#: What a service name may look like (it becomes a file name).
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def log_file(logs_dir: Path, service: str) -> Path:
    """``<logs dir>/<service>.jsonl``."""
    return logs_dir / f"{service}{SUFFIX}"


def rotated(path: Path, number: int) -> Path:
    """The ``number``-th older file of ``path`` (``path`` itself for 0)."""
    return path if number == 0 else path.with_name(f"{path.name}.{number}")


class JsonLineFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "service": self.service,
                "level": record.levelname,
                "logger": record.name,
                "message": message,
                "pid": record.process,
            },
            ensure_ascii=False,
        )


class ServiceLogHandler(logging.Handler):
    """Appends records to ``path`` as JSON lines, rotating it by size (module docstring)."""

    def __init__(
        self,
        path: str | Path,
        service: str,
        *,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        level: int | str = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.path = Path(path)
        self.service = service
        self.max_bytes = max_bytes
        self.backups = backups
        self.setFormatter(JsonLineFormatter(service))
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._reported = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except Exception:  # a record whose message cannot be formatted: logging's own report
            self.handleError(record)
            return
        try:
            self._append(line)
        except OSError as error:
            self._forget()
            if not self._reported:
                self._reported = True
                print(
                    f"kiln: cannot write the log file {self.path} ({error.strerror or error}); "
                    "logging to standard error only until it works again",
                    file=sys.stderr,
                )
        else:
            self._reported = False

    def close(self) -> None:
        self.acquire()
        try:
            self._forget()
        finally:
            self.release()
        super().close()

    def _append(self, line: bytes) -> None:
        size = self._open()
        if size > 0 and size + len(line) > self.max_bytes:
            self._rotate(len(line))
            self._open()
        assert self._fd is not None
        os.write(self._fd, line)

    def _open(self) -> int:
        """Have the file at the path open (again, if another process rotated it); its size."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            found = None
        if self._fd is not None:
            if found is not None and (found.st_dev, found.st_ino) == self._identity:
                return found.st_size
            self._forget()
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        opened = os.fstat(self._fd)
        self._identity = (opened.st_dev, opened.st_ino)
        return opened.st_size

    def _rotate(self, incoming: int) -> None:
        """Move the file (and its older ones) aside, unless another process just did."""
        lock = os.open(
            self.path.with_name(self.path.name + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o640,
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                return
            if size + incoming <= self.max_bytes:
                return
            if self.backups < 1:
                os.unlink(self.path)
                return
            for number in range(self.backups - 1, 0, -1):
                older = rotated(self.path, number)
                if older.exists():
                    os.replace(older, rotated(self.path, number + 1))
            os.replace(self.path, rotated(self.path, 1))
        finally:
            os.close(lock)  # releases the lock

    def _forget(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._identity = self._fd, None, None
            with contextlib.suppress(OSError):
                os.close(fd)


def service_name(default: str, environ: Mapping[str, str] | None = None) -> str:
    """The name this process logs under: :data:`SERVICE_NAME_VARIABLE` when it is set to a
    valid name (``kiln serve``'s children), else ``default``."""
    value = (os.environ if environ is None else environ).get(SERVICE_NAME_VARIABLE, "")
    return value if SERVICE_NAME.match(value) else default


def add_service_log(logs_dir: Path, service: str) -> ServiceLogHandler:
    """Send the root logger's records to ``<logs dir>/<service>.jsonl`` too (replacing a
    service log handler added before); the file is created with the first record."""
    if not SERVICE_NAME.match(service):
        raise ValueError(f"not a service name: {service!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, ServiceLogHandler):
            root.removeHandler(handler)
            handler.close()
    handler = ServiceLogHandler(log_file(logs_dir, service), service)
    root.addHandler(handler)
    return handler


def handler_configs() -> dict[str, dict[str, Any]]:
    """``logging.config.dictConfig`` handler entries that recreate the service log handlers
    of the root logger, for processes that set their logging up anew from a dictionary
    (granian's: appliance.web.server)."""
    return {
        f"kiln-service-log-{number}": {
            "()": f"{__name__}.{ServiceLogHandler.__name__}",
            "path": str(handler.path),
            "service": handler.service,
            "max_bytes": handler.max_bytes,
            "backups": handler.backups,
        }
        for number, handler in enumerate(
            h for h in logging.getLogger().handlers if isinstance(h, ServiceLogHandler)
        )
    }

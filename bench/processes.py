"""Child processes for the control-plane benchmarks: start, find, measure and stop them.

The control-plane benchmarks run real Kiln processes (``kiln worker``, ``kiln serve`` and the
managed PostgreSQL it starts in its own session) and must leave nothing behind, even when they
break half-way. Everything here works from ``/proc`` and from process ids this benchmark
started: a process tree is found by parent ids, and leftovers by the scratch directory their
command line or working directory names. Nothing is ever matched by program name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from measure import BenchmarkError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(directory: Path) -> Path:
    """Open ``directory`` for search by other users (0711).

    Run as root, Kiln's managed PostgreSQL runs as an unprivileged system user, which must be
    able to pass through the scratch directory (``tempfile.mkdtemp`` makes it 0700) to reach the
    cluster. Nothing is readable or listable for it; only this directory's own mode changes.
    """
    directory.chmod(0o711)
    return directory


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def descendants(root: int) -> list[int]:
    """Live processes (not threads) below ``root``, parents before children."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        parent = parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop(0)
        if is_alive(pid):
            found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def mentioning(text: str) -> list[int]:
    """Live processes whose command line or working directory mentions ``text``."""
    found = []
    for pid in _all_pids():
        if pid == os.getpid() or not is_alive(pid):
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        cwd = ""
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{pid}/cwd")
        if text in command or text in cwd:
            found.append(pid)
    return found


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    remaining = [pid for pid in pids if is_alive(pid)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = [pid for pid in remaining if is_alive(pid)]
    return remaining


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` (processes this benchmark started, or their children)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float) -> bool:
    """SIGTERM ``process``, wait up to ``timeout`` s for it to exit, then SIGKILL it and every
    process that was below it. True when it stopped by itself in time."""
    tree = descendants(process.pid)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            tree = list(dict.fromkeys([*tree, *descendants(process.pid)]))
            kill_all([process.pid, *tree])
            process.wait()
            _wait_gone(tree, 5.0)
            return False
    left = _wait_gone(tree, 5.0)
    kill_all(left)
    _wait_gone(left, 5.0)
    return not left


def sweep(marker: str) -> list[str]:
    """Kill whatever still runs from the scratch directory ``marker`` (after a broken run);
    returns the command lines of what had to be killed."""
    left = mentioning(marker)
    lines = [f"{pid}: {command_line(pid)}" for pid in left]
    kill_all(left)
    _wait_gone(left, 5.0)
    return lines


@dataclass(frozen=True)
class Memory:
    """Resident memory of one process, from ``/proc/<pid>/status`` and ``smaps_rollup``."""

    pid: int
    rss: int  #: VmRSS, bytes: every page mapped, shared ones counted in full
    pss: int  #: proportional set size, bytes: shared pages divided among their users
    anonymous: int  #: RssAnon, bytes: private heap and stack, the process's own memory


def memory_of(pid: int) -> Memory | None:
    """None when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0]) * 1024
    pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return Memory(pid, fields.get("VmRSS", 0), pss, fields.get("RssAnon", 0))


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status of a GET of ``url``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is unreadable)"


def run_checked(
    arguments: list[str], timeout: float = 120, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; a failure (or taking longer than ``timeout``) breaks the
    benchmark."""
    completed = subprocess.run(
        arguments, capture_output=True, text=True, timeout=timeout, check=False, env=environment
    )
    if completed.returncode != 0:
        raise BenchmarkError(
            f"{' '.join(arguments)} exited with {completed.returncode}: "
            f"{(completed.stderr or completed.stdout).strip()[-2000:]}"
        )
    return completed

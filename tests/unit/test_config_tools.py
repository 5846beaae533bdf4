"""``generate``, ``show`` and ``verify`` as library functions."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from appliance.common.paths import DataDir
from appliance.config import load_config
from appliance.config.base import MASK, ordered_traits
from appliance.config.catalog import CLASSES
from appliance.config.generate import generate_config
from appliance.config.show import render_json, render_text
from appliance.config.verify import verify_file


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    (tmp_path / "data").mkdir()
    return DataDir(tmp_path / "data")


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def uncomment_assignments(text: str) -> str:
    """Turn every commented ``# c.Class.option = ...`` statement (and its continuation) on."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"# c\.\w+\.\w+ = ", line):
            out.append(line[2:])
            inside = True
        elif inside and line.startswith("#  "):
            out.append(line[2:])
        else:
            inside = False
            out.append(line)
    return "\n".join(out) + "\n"


# --- generate ---------------------------------------------------------------------------------


def test_generated_file_documents_every_option_of_every_class(data_dir: DataDir) -> None:
    text = generate_config(data_dir)

    for cls in CLASSES:
        assert f"# {cls.__name__}: " in text
        for name in ordered_traits(cls, own=True):
            assert f"# c.{cls.__name__}.{name} = " in text, f"{cls.__name__}.{name}"
    assert "KILN_DATABASE_URL" in text
    assert f"# c.CondaStore.store_directory = '{data_dir.root}/store'" in text
    assert "## Default: <data dir>/store" in text
    assert "from conda_store_server.storage import S3Storage" in text


def test_generated_file_loads_as_is_and_with_every_default_uncommented(
    tmp_path: Path, data_dir: DataDir
) -> None:
    text = generate_config(data_dir)
    plain = write(tmp_path / "generated.py", text)
    assert load_config(plain, data_dir, environ={}).problems == ()

    active = write(tmp_path / "uncommented.py", uncomment_assignments(text))
    loaded = load_config(active, data_dir, environ={})
    defaults = load_config(None, data_dir, environ={})

    assert loaded.source_of("CondaStore", "store_directory") == f"file {active}"
    for instance, default in zip(loaded.active_sections(), defaults.active_sections(), strict=True):
        for name, trait in ordered_traits(type(instance)).items():
            if trait.metadata.get("obsolete"):
                continue
            assert getattr(instance, name) == getattr(default, name), name
    assert loaded.problems == ()


# --- show -------------------------------------------------------------------------------------

SECRET_CONFIG = """
c.CondaStore.database_url = "postgresql://kiln:db-password@db.example.org/kiln"
c.CondaStore.storage_class = "S3Storage"
c.S3Storage.internal_endpoint = "minio:9000"
c.S3Storage.access_key = "kiln-access"
c.S3Storage.secret_key = "s3-password"
c.CondaStoreServer.authentication_class = "GithubOAuthAuthentication"
c.GithubOAuthAuthentication.client_id = "kiln-app"
c.GithubOAuthAuthentication.client_secret = "oauth-password"
c.AuthenticationBackend.secret = "jwt-password"
c.CondaStoreServer.secret_key = "session-password"
"""


def test_show_masks_secrets_and_reports_sources(tmp_path: Path, data_dir: DataDir) -> None:
    path = write(tmp_path / "kiln.py", SECRET_CONFIG)
    config = load_config(path, data_dir, environ={"KILN_PORT": "8443"})

    text = render_text(config)

    assert "password" not in text
    assert "c.CondaStore.database_url = 'postgresql://kiln:********@db.example.org/kiln'" in text
    assert f"c.S3Storage.secret_key = '{MASK}'  # file {path}" in text
    assert f"c.GithubOAuthAuthentication.client_secret = '{MASK}'" in text
    assert "c.S3Storage.access_key = 'kiln-access'" in text
    assert "c.CondaStoreServer.port = 8443  # environment KILN_PORT" in text
    assert "c.CondaStoreServer.max_page_size = 100  # default" in text
    assert "# S3Storage (chosen by CondaStore.storage_class)" in text
    assert re.search(r"S3Storage.internal_secure = True  # default\n", text)


def test_show_json_is_machine_readable_and_masked(tmp_path: Path, data_dir: DataDir) -> None:
    path = write(tmp_path / "kiln.py", SECRET_CONFIG)
    document = json.loads(render_json(load_config(path, data_dir, environ={})))

    options = {
        option["option"]: option
        for section in document["sections"]
        for option in section["options"]
    }
    assert options["AuthenticationBackend.secret"]["value"] == MASK
    assert options["CondaStore.storage_class"]["value"] == "S3Storage"
    assert options["CondaStore.storage_class"]["source"] == f"file {path}"
    assert options["CondaStoreServer.port"]["source"] == "default"
    assert "password" not in json.dumps(document)


def test_show_lists_ignored_options_only_when_set(tmp_path: Path, data_dir: DataDir) -> None:
    path = write(tmp_path / "kiln.py", 'c.CondaStore.conda_command = "mamba"\n')

    text = render_text(load_config(path, data_dir, environ={}))

    assert "c.CondaStore.conda_command = 'mamba'" in text
    assert "ignored: Kiln solves and installs with py-rattler" in text
    assert "celery_broker_url" not in text


# --- verify -----------------------------------------------------------------------------------


def test_verify_accepts_a_good_file_with_warnings_for_ignored_options(
    tmp_path: Path, data_dir: DataDir
) -> None:
    path = write(
        tmp_path / "kiln.py",
        """
        c.CondaStore.celery_broker_url = "redis://redis:6379/0"
        c.CondaStoreServer.port = 8080
        """,
    )

    problems = verify_file(path, data_dir)

    assert [problem.severity for problem in problems] == ["warning"]
    assert "CondaStore.celery_broker_url is ignored" in problems[0].message


def test_verify_reports_every_problem_with_its_line(tmp_path: Path, data_dir: DataDir) -> None:
    path = write(
        tmp_path / "kiln.py",
        """\
        c.CondaStore.store_directry = "/srv/envs"
        c.CondaStoreServer.port = "eighty"
        c.CondaStoreServer.log_level = "LOUD"
        c.CondaStor.default_namespace = "x"
        c.CondaStoreServer.conda_allowed_channels = ["conda-forge"]
        c.CondaStore.conda_command = "mamba"
        """,
    )

    problems = {problem.line: problem for problem in verify_file(path, data_dir)}

    assert problems[1].severity == "error"
    assert "CondaStore.store_directry" in problems[1].message
    assert "did you mean CondaStore.store_directory?" in problems[1].message
    assert "CondaStoreServer.port" in problems[2].message
    assert "expected an int" in problems[2].message
    assert "CondaStoreServer.log_level" in problems[3].message
    assert "DEBUG, INFO" in problems[3].message
    assert "unknown class CondaStor (did you mean CondaStore?)" in problems[4].message
    assert "did you mean CondaStore.conda_allowed_channels?" in problems[5].message
    assert problems[6].severity == "warning"
    assert str(problems[1]).startswith(f"{path}:1: error: ")


def test_verify_reports_a_syntax_error_with_its_line(tmp_path: Path, data_dir: DataDir) -> None:
    path = write(tmp_path / "kiln.py", "c.CondaStoreServer.port = 8080\nc.CondaStore.x = [\n")

    (problem,) = verify_file(path, data_dir)

    assert problem.severity == "error"
    assert problem.line == 2
    assert "syntax error" in problem.message


def test_verify_ignores_the_environment(
    tmp_path: Path, data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_PORT", "not-a-port")
    path = write(tmp_path / "kiln.py", "c.CondaStoreServer.port = 8080\n")

    assert verify_file(path, data_dir) == []

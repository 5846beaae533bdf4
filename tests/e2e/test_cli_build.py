"""``kiln build`` as a user runs it: the real CLI in a subprocess, on the demo channel."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.kiln import kiln

SPEC = """\
name: demo
dependencies:
  - kiln-demo-tool >=1.0
  - kiln-demo-data
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "environment.yml"
    path.write_text(SPEC)
    return path


def test_version() -> None:
    from appliance import __version__

    result = kiln("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kiln {__version__}"


def test_build_prints_where_the_environment_and_artifacts_are(
    tmp_path: Path, spec_file: Path, demo_channel: Path
) -> None:
    data = tmp_path / "data"
    result = kiln("build", spec_file, "--data-dir", data, "--channel", demo_channel)
    assert result.returncode == 0, result.stderr
    link = data / "store" / "default" / "envs" / "demo"
    assert f"environment  {link}" in result.stdout
    for kind in ("LOGS", "LOCKFILE", "YAML", "CONDA_PACK"):
        assert kind in result.stdout
    assert "[install] linking kiln-demo-tool" in result.stderr
    tool = subprocess.run([link / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
    assert tool.stdout.strip() == str(link.resolve())


def test_build_json_output_and_store_override(
    tmp_path: Path, spec_file: Path, demo_channel: Path
) -> None:
    store = tmp_path / "elsewhere"
    result = kiln(
        "build",
        spec_file,
        "--data-dir",
        tmp_path / "data",
        "--channel",
        demo_channel,
        "--store-dir",
        store,
        "--namespace",
        "team",
        "--name",
        "tools",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["environment"] == str(store / "team" / "envs" / "tools")
    assert Path(summary["artifacts"]["CONDA_PACK"]).is_file()
    assert {p["name"] for p in summary["packages"]} >= {"kiln-demo-tool", "kiln-demo-lib"}
    assert result.stderr == ""  # --json does not stream the log


def test_a_second_build_gets_a_new_build_id_and_becomes_current(
    tmp_path: Path, spec_file: Path, demo_channel: Path
) -> None:
    common = ("--data-dir", tmp_path / "data", "--channel", demo_channel, "--json")
    first = json.loads(kiln("build", spec_file, *common).stdout)
    spec_file.write_text(SPEC.replace("kiln-demo-tool >=1.0", "kiln-demo-tool <1"))
    second = json.loads(kiln("build", spec_file, *common).stdout)
    assert second["build_id"] == first["build_id"] + 1
    link = Path(second["environment"])
    assert link.resolve() == Path(second["prefix"])
    assert Path(first["prefix"]).is_dir()  # earlier builds are kept


def test_build_reads_stdin(tmp_path: Path, demo_channel: Path) -> None:
    result = kiln(
        "build",
        "-",
        "--data-dir",
        tmp_path / "data",
        "--channel",
        demo_channel,
        "-q",
        stdin=SPEC,
    )
    assert result.returncode == 0, result.stderr


BAD_SPECS = {
    "yaml syntax": ("name: demo\ndependencies:\n  - a\n - b: [\n", r"line \d"),
    "missing name": ("dependencies:\n  - kiln-demo-data\n", "name"),
    "path traversal in name": ("name: ../etc\ndependencies: [kiln-demo-data]\n", "name"),
    "unparsable dependency": (
        "name: demo\ndependencies:\n  - kiln-demo-data\n  - 'numpy >>= 1'\n",
        r"dependencies\[1\] \(line 4\)",
    ),
    "unknown key": ("name: demo\ndependency: [kiln-demo-data]\n", "dependency"),
    "channel not allowed": (
        "name: demo\nchannels: [conda-forge]\ndependencies: [kiln-demo-data]\n",
        "channel .*conda-forge.* is not allowed",
    ),
    "oversized": ("name: demo\ndescription: " + "x" * 70_000 + "\n", "limit on this server is"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specifications_are_refused_with_a_clear_message_and_change_nothing(
    case: str, tmp_path: Path, demo_channel: Path
) -> None:
    text, message = BAD_SPECS[case]
    spec = tmp_path / "environment.yml"
    spec.write_text(text)
    data = tmp_path / "data"
    config = tmp_path / "kiln_config.py"
    config.write_text(
        f"c.CondaStore.conda_allowed_channels = [{str(demo_channel)!r}]\n"
        f"c.CondaStore.conda_default_channels = [{str(demo_channel)!r}]\n"
    )
    result = kiln("build", spec, "--data-dir", data, "--config", config)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("kiln: error: "), result.stderr
    import re

    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists()


def test_an_unsatisfiable_spec_fails_with_the_reason_and_the_log_location(
    tmp_path: Path, demo_channel: Path
) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text("name: demo\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n")
    result = kiln("build", spec, "--data-dir", tmp_path / "data", "--channel", demo_channel, "-q")
    assert result.returncode == 1
    assert "cannot be satisfied" in result.stderr
    log = result.stderr.split("full build log: ")[1].strip()
    assert "kiln-demo-legacy" in Path(log).read_text()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = kiln("build", tmp_path / "nope.yml", "--data-dir", tmp_path / "data")
    assert result.returncode == 1
    assert "nope.yml: no such file" in result.stderr

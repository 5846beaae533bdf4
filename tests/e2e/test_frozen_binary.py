"""The one-file executable: built by the suite, run in a clean directory with an empty environment.

Nothing that breaks freezing (a module only reached through importlib, a missing data file, a
library that needs an environment variable) can land: these tests run the real ``dist/kiln``,
up to ``kiln serve`` with its managed PostgreSQL, web process and worker, all from the bundle.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from appliance import __version__
from tests.e2e.kiln import REPOSITORY, kiln
from tests.fixtures.serve import free_port, processes_mentioning, serve_data_dir, wait_until_ready

pytestmark = pytest.mark.binary

BINARY = REPOSITORY / "dist" / "kiln"
SOURCES = ("appliance", "tui", "packaging", "pyproject.toml")


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        root = REPOSITORY / name
        paths = [root] if root.is_file() else list(root.rglob("*"))
        newest = max([newest, *(p.stat().st_mtime for p in paths if p.is_file())])
    return newest


@pytest.fixture(scope="session")
def frozen_kiln() -> Path:
    """``dist/kiln``, rebuilt with PyInstaller (``make binary``) when any source is newer."""
    if not BINARY.exists() or BINARY.stat().st_mtime < _newest_source():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "PyInstaller",
                "--noconfirm",
                "--clean",
                "--log-level",
                "WARN",
                "--distpath",
                "dist",
                "--workpath",
                "build/pyinstaller",
                "packaging/kiln.spec",
            ],
            cwd=REPOSITORY,
            check=True,
            timeout=900,
        )
    return BINARY


def run_frozen(
    binary: Path, *args: str | Path, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the binary with an empty environment, as cron or `env -i` would."""
    return kiln(*args, cwd=cwd, env={}, timeout=timeout, executable=[str(binary)])


def test_the_frozen_binary_reports_its_version(frozen_kiln: Path, tmp_path: Path) -> None:
    result = run_frozen(frozen_kiln, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kiln {__version__}"


def test_the_frozen_binary_writes_the_demo_channel_and_builds_from_it(
    frozen_kiln: Path, tmp_path: Path
) -> None:
    channel = run_frozen(frozen_kiln, "channel", "demo", "channel", cwd=tmp_path)
    assert channel.returncode == 0, channel.stderr
    assert (tmp_path / "channel" / "linux-64" / "repodata.json").is_file()
    (tmp_path / "environment.yml").write_text(
        (REPOSITORY / "examples" / "demo-environment.yaml").read_text()
    )
    built = run_frozen(
        frozen_kiln,
        "build",
        "environment.yml",
        "--data-dir",
        tmp_path / "data",
        "--channel",
        tmp_path / "channel",
        "--json",
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    link = Path(summary["environment"])
    tool = subprocess.run([link / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
    assert tool.stdout.strip() == str(link.resolve())

    # conda-pack's scripts come from inside the bundle, unpacked 0600: the archive must still
    # give other users a readable bin/activate.
    with tarfile.open(summary["artifacts"]["CONDA_PACK"]) as archive:
        activate = archive.getmember("bin/activate")
        assert activate.mode & stat.S_IROTH, oct(activate.mode)
        assert "bin/conda-unpack" in archive.getnames()


def test_the_frozen_binary_reports_bad_input_cleanly(frozen_kiln: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("name: demo\ndependencies:\n  - 'numpy >>= 1'\n")
    result = run_frozen(frozen_kiln, "build", "bad.yml", "--data-dir", tmp_path / "d", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("kiln: error: dependencies[0]")
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["bad.yml"]


def test_the_frozen_binary_serves_builds_from_the_queue_and_stops_cleanly(
    frozen_kiln: Path, tmp_path: Path
) -> None:
    """``kiln serve`` from the binary alone: PostgreSQL from the bundle, migrations, web and a
    worker (each a child re-executing the binary); a build queued by ``kiln build --queue``
    completes; SIGTERM stops everything, PostgreSQL included."""
    channel = run_frozen(frozen_kiln, "channel", "demo", "channel", cwd=tmp_path)
    assert channel.returncode == 0, channel.stderr
    port = free_port()
    with serve_data_dir(tmp_path / "channel", port, prefix="kiln-frozen-serve-") as data_dir:
        log = tmp_path / "serve.log"
        with log.open("wb") as output:  # a file, not a pipe nobody reads while the test runs
            serve = subprocess.Popen(
                [str(frozen_kiln), "serve", "--data-dir", str(data_dir)],
                cwd=tmp_path, env={}, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/readyz", serve, timeout=180, output=log)
            built = run_frozen(
                frozen_kiln, "build", REPOSITORY / "examples" / "demo-environment.yaml",
                "--queue", "--wait", "--data-dir", data_dir, cwd=tmp_path, timeout=180,
            )  # fmt: skip
            assert built.returncode == 0, built.stdout + built.stderr
            link = data_dir / "store" / "default" / "envs" / "demo"
            tool = subprocess.run(
                [link / "bin" / "kiln-demo-tool"], capture_output=True, text=True, timeout=30
            )
            assert tool.stdout.strip() == str(link.resolve())
        finally:
            stopped = _stop(serve, timeout=120)
        served = log.read_text(errors="replace")
        assert stopped, f"kiln serve did not stop within 120 s of SIGTERM:\n{served}"
        assert serve.returncode == 0, served
        assert "Traceback" not in served, served
        assert processes_mentioning(str(data_dir)) == []


def _stop(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM, then wait up to ``timeout`` seconds; False (after killing its whole process
    group, so nothing outlives the test) when it did not stop in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        return False
    return True

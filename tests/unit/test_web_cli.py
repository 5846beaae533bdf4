"""`kiln web`'s command line: options, and the metrics directory several workers share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.web import metrics_directory

REPOSITORY = Path(__file__).resolve().parents[2]


def kiln_web(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "web", *args],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_names_the_options() -> None:
    result = kiln_web("--help")
    assert result.returncode == 0
    assert "--workers" in result.stdout
    assert "--stop-timeout" in result.stdout


@pytest.mark.parametrize("option", [["--workers", "0"], ["--stop-timeout", "soon"]])
def test_bad_options_are_usage_errors(option: list[str]) -> None:
    result = kiln_web(*option)
    assert result.returncode == 2
    assert option[0] in result.stderr


def test_several_workers_share_a_private_metrics_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics_directory(workers=2):
        directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.is_dir()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert not directory.exists()


def test_one_worker_keeps_its_metrics_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics_directory(workers=1):
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_the_supervisor_s_directory_is_used_and_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "run" / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    with metrics_directory(workers=3):
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
        assert directory.is_dir()
    assert directory.is_dir()  # not ours to remove

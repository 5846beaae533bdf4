"""The systemd unit passes systemd's own checks and keeps its hardening (Debian's systemd)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.kiln import REPOSITORY

UNIT = REPOSITORY / "systemd" / "kiln.service"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="Debian's systemd package is not installed"
)


def unit_with_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine, since
    `verify` checks the command (the real unit names /usr/local/bin/kiln, placed by install.sh)."""
    fake = tmp_path / "kiln"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    unit = tmp_path / "kiln.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/kiln", str(fake)))
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_with_binary(tmp_path))],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_unit_runs_kiln_serve_as_a_notify_service_with_its_state_directory() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecStart=/usr/local/bin/kiln serve",
        "StateDirectory=kiln",
        "User=kiln",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line


def test_the_exposure_score_stays_low(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_with_binary(tmp_path))],
        capture_output=True, text=True,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for kiln\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout

"""Run the real ``kiln`` command line as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def kiln(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 300,
    executable: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``kiln ARGS`` (``python -m appliance`` unless ``executable`` is given)."""
    command = [*(executable or (sys.executable, "-m", "appliance")), *map(str, args)]
    environment = dict(os.environ if env is None else env)
    if executable is None:
        environment["PYTHONPATH"] = str(REPOSITORY)
    return subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

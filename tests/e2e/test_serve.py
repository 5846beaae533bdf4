"""``kiln serve`` on a fresh data dir: managed PostgreSQL, migrations, web and a worker come up,
a build submitted from the CLI completes, and SIGTERM stops everything with nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kiln import REPOSITORY, kiln
from tests.fixtures.serve import free_port, processes_mentioning, serve_data_dir, wait_for_banner


@pytest.fixture
def data_dir(demo_channel: Path) -> Iterator[Path]:
    with serve_data_dir(demo_channel, free_port()) as root:
        yield root


def test_serve_comes_up_builds_from_the_queue_and_stops_cleanly(data_dir: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--data-dir", str(data_dir)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        banner = wait_for_banner(serve)
        web = next(line.split()[1] for line in banner if line.strip().startswith("web "))
        token_lines = [line for line in banner if "setup token" in line]
        assert token_lines, banner
        with urllib.request.urlopen(f"{web}healthz", timeout=5) as response:
            assert json.load(response)["status"] == "ok"

        spec = data_dir / "environment.yml"
        spec.write_text("name: served\ndependencies:\n  - kiln-demo-tool\n")
        built = kiln("build", spec, "--queue", "--wait", "--data-dir", data_dir, timeout=120)
        assert built.returncode == 0, built.stdout + built.stderr
        link = data_dir / "store" / "default" / "envs" / "served"
        tool = subprocess.run([link / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
        assert tool.stdout.strip() == str(link.resolve())

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{web}readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("/readyz never said ready")
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=120)
    assert serve.returncode == 0, output
    assert processes_mentioning(str(data_dir)) == []

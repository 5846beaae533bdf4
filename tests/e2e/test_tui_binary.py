"""The frozen binary's admin console in a real terminal: tmux runs ``dist/kiln tui`` on the Kiln
host of a live ``kiln serve`` and the test reads the screen and types like an operator would.

The console finds the server from the data dir and mints its own token (nothing is passed but
``--data-dir``), shows the dashboard with the services running, opens a build's log from the
builds screen, and quits cleanly with ``q`` (exit status 0, nothing on the screen but the
console's own output).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.kiln import REPOSITORY, kiln, served_kiln
from tests.e2e.test_frozen_binary import frozen_kiln

pytestmark = pytest.mark.binary

__all__ = ["frozen_kiln"]  # the fixture, shared with test_frozen_binary.py

#: The terminal: bigger than 80x24 would hide layout problems; this is what SSH gives.
COLUMNS, LINES = 80, 24


@dataclass(frozen=True)
class Terminal:
    """A tmux session on its own server (``-L``), running one command."""

    socket: str
    session: str

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )

    def screen(self) -> str:
        """What the terminal shows now."""
        return self.tmux("capture-pane", "-p", "-t", self.session).stdout

    def keys(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names: ``Enter``, ``Escape``, ``q``...)."""
        self.tmux("send-keys", "-t", self.session, *keys)

    def wait_for(self, condition: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        """The screen once ``condition(screen)`` holds; fails with the screen after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if condition(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{shown}")
            time.sleep(0.3)


@contextmanager
def terminal(command: list[str], directory: Path) -> Iterator[tuple[Terminal, Path]]:
    """``command`` in a fresh tmux server's session of :data:`COLUMNS` x :data:`LINES`, with an
    almost empty environment (as cron or ``env -i`` would give, plus a terminal type); the
    file its exit status is written to. The tmux server is killed afterwards."""
    status = directory / "exit-status"
    shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(status))}; sleep 600"
    term = Terminal(socket=f"kiln-tui-test-{os.getpid()}", session="console")
    environment = {"TERM": "xterm-256color", "HOME": str(directory), "PATH": os.defpath}
    started = subprocess.run(
        ["tmux", "-L", term.socket, "-f", "/dev/null", "new-session", "-d",
         "-s", term.session, "-x", str(COLUMNS), "-y", str(LINES), "-c", str(directory),
         "env", "-i", *(f"{k}={v}" for k, v in environment.items()), "sh", "-c", shell],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pane = term.tmux("display-message", "-p", "-t", term.session, "#{pane_pid}").stdout.strip()
    try:
        yield term, status
    finally:
        term.tmux("kill-server")
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(int(pane), signal.SIGKILL)  # the pane's shell and what it runs


def test_the_frozen_console_shows_the_services_opens_a_build_log_and_quits(
    frozen_kiln: Path, demo_channel: Path, tmp_path: Path
) -> None:
    with served_kiln(demo_channel, prefix="kiln-tui-binary-") as served:
        spec = tmp_path / "environment.yml"
        spec.write_text((REPOSITORY / "examples" / "demo-environment.yaml").read_text())
        built = kiln("build", spec, "--queue", "--wait", "--data-dir", served.data_dir)
        assert built.returncode == 0, built.stdout + built.stderr

        command = [str(frozen_kiln), "tui", "--data-dir", str(served.data_dir)]
        with terminal(command, tmp_path) as (term, status):
            shown = term.wait_for(
                lambda screen: "worker-1" in screen and "All services are running" in screen,
                "the dashboard with the services running",
            )
            for service in ("postgres", "web", "worker-1"):
                line = next(line for line in shown.splitlines() if f" {service} " in line)
                assert "running" in line, shown

            term.keys("2")
            term.wait_for(lambda screen: "default/demo" in screen, "the builds screen")
            term.keys("Enter")
            log = term.wait_for(
                lambda screen: (
                    "Build 1 of default/demo: COMPLETED" in screen and "build 1 completed" in screen
                ),
                "the build's log",
            )
            assert "[install]" in log or "[activate]" in log, log

            term.keys("Escape")
            term.wait_for(  # the navigation line is on the main screens, not on the log's
                lambda screen: "1 Dashboard" in screen, "back on the builds screen"
            )
            term.keys("q")
            deadline = time.monotonic() + 30
            while not status.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            after = term.screen()
            assert status.exists(), f"the console did not quit:\n{after}"
            assert status.read_text().strip() == "0", after
            assert "Traceback" not in after, after

"""Run the real ``kiln`` command line as a subprocess, as a user would.

:func:`kiln` runs one command and waits for it; :func:`served_kiln` keeps ``kiln serve`` running
on a fresh data dir for a block of tests (built on :mod:`tests.fixtures.serve`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.serve import free_port, processes_mentioning, serve_data_dir, wait_until_ready

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


@dataclass(frozen=True)
class ServedKiln:
    """A running ``kiln serve``: where it answers, its data dir and its combined output."""

    url: str  #: ``http://127.0.0.1:PORT`` (no slash at the end)
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def output(self, last: int = 60) -> str:
        """The last ``last`` lines ``kiln serve`` wrote (for failure messages)."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return "\n".join(lines[-last:])

    def mint_token(self, *options: str) -> str:
        """``kiln token create OPTIONS`` on this data dir: the token (its last line of output)."""
        created = kiln("token", "create", "--data-dir", self.data_dir, *options, timeout=60)
        if created.returncode != 0:
            raise AssertionError(f"kiln token create failed:\n{created.stdout}{created.stderr}")
        return created.stdout.strip().splitlines()[-1]


@contextmanager
def served_kiln(
    channel: Path,
    *,
    prefix: str = "kiln-serve-test-",
    ready_timeout: float = 90,
    stop_timeout: float = 120,
) -> Iterator[ServedKiln]:
    """``kiln serve`` on a fresh data dir (:func:`~tests.fixtures.serve.serve_data_dir`:
    ``channel`` the only channel, 127.0.0.1 on a free port) for the duration of the block.

    Ready means ``/readyz`` answers 200 (database, schema and a worker's heartbeat) within
    ``ready_timeout`` seconds. Output goes to ``serve.log`` in the data dir, never to a pipe
    nobody reads (a full pipe would stall the server). On exit: SIGTERM; if the supervisor has
    not stopped within ``stop_timeout`` seconds, the process group it was started in is killed
    and the block fails, as it does when a process naming the data dir is left behind.
    """
    port = free_port()
    with serve_data_dir(channel, port, prefix=prefix) as data_dir:
        log = data_dir / "serve.log"
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "appliance", "serve", "--data-dir", str(data_dir)],
                env=environment, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        served = ServedKiln(f"http://127.0.0.1:{port}", port, data_dir, log, process)
        try:
            wait_until_ready(f"{served.url}/readyz", process, ready_timeout, log)
            yield served
        finally:
            _stop(served, stop_timeout)


def _stop(served: ServedKiln, timeout: float) -> None:
    process = served.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        raise AssertionError(
            f"kiln serve did not stop within {timeout:g}s of SIGTERM:\n{served.output()}"
        ) from None
    left = processes_mentioning(str(served.data_dir))
    if left:
        raise AssertionError(f"kiln serve left processes behind: {left}\n{served.output()}")

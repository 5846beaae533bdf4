"""`kiln worker`'s command line: bad options are usage errors, refused before the database is
ever reached."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP port standing in for the database: it counts the connections made to it and
    closes each at once (a client that does connect fails fast instead of waiting)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = int(self._socket.getsockname()[1])
        self.connections = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="database-stand-in")
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def database_stand_in() -> Iterator[Listener]:
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


def kiln_worker(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "kiln_config.py"
    config.write_text(
        f"c.CondaStore.database_url = 'postgresql+psycopg://kiln@127.0.0.1:{port}/kiln'\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "appliance", "worker", "--burst", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), *args],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_help_names_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "worker", "--help"],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in ("--concurrency", "--burst", "--drain-timeout"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "option",
    [
        ["--concurrency", "0"],
        ["--concurrency", "-2"],
        ["--concurrency", "two"],
        ["--drain-timeout", "-1"],
    ],
)
def test_bad_options_are_usage_errors_refused_before_the_database_is_reached(
    option: list[str], tmp_path: Path, database_stand_in: Listener
) -> None:
    result = kiln_worker(tmp_path, database_stand_in.port, *option)
    assert result.returncode == 2, result.stderr
    assert f"argument {option[0]}" in result.stderr
    assert "Traceback" not in result.stderr
    assert database_stand_in.connections == 0
    assert not (tmp_path / "data").exists()


def test_the_stand_in_database_sees_a_worker_with_good_options(
    tmp_path: Path, database_stand_in: Listener
) -> None:
    """The check above means something: a worker whose options are fine does connect (and,
    finding no database there, fails with status 1)."""
    result = kiln_worker(tmp_path, database_stand_in.port, "--concurrency", "1")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("kiln: error:"), result.stderr
    assert database_stand_in.connections > 0

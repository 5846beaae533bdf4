"""The supervisor's status file (appliance.supervisor.status, appliance.services.supervision):
what it says about real processes, how it is replaced, and how a reader tells a live
supervisor from a stale report or a gone one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.services.supervision import (
    STALE_AFTER,
    STATUS_FORMAT,
    read_status,
    start_ticks,
    status_file,
)
from appliance.supervisor.children import ChildSpec, Supervisor
from appliance.supervisor.status import (
    ProcessTable,
    ServiceRecord,
    StatusPublisher,
    SupervisorIdentity,
    build_status,
    measure,
    services_of,
)


@pytest.fixture
def parent_with_child() -> Iterator[subprocess.Popen[bytes]]:
    """A Python process that runs a ``sleep`` child of its own."""
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '30'])\ntime.sleep(30)\n"
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(ProcessTable.read().tree(process.pid)) < 2:
            assert time.monotonic() < deadline, "the grandchild did not start"
            time.sleep(0.05)
        yield process
    finally:
        os.killpg(process.pid, 9)
        process.wait()


def test_memory_covers_a_process_and_its_descendants(
    parent_with_child: subprocess.Popen[bytes],
) -> None:
    memory = measure(parent_with_child.pid, ProcessTable.read())
    assert memory.processes == 2
    assert memory.rss_bytes is not None and memory.rss_bytes > 1_000_000  # a Python interpreter
    assert memory.memory_bytes is not None and memory.memory_bytes > 0


def test_a_gone_process_has_no_memory() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    memory = measure(process.pid, ProcessTable.read())
    assert (memory.rss_bytes, memory.memory_bytes) == (None, None)


def identity(tmp_path: Path) -> SupervisorIdentity:
    return SupervisorIdentity("9.9.9", tmp_path / "data", tmp_path / "data" / "kiln_config.py")


def test_the_status_file_describes_the_running_children(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]

    async def scenario() -> None:
        children = Supervisor([ChildSpec("web", sleeper), ChildSpec("worker-1", sleeper)])
        record = ServiceRecord()
        record.running()
        postgres = (record, os.getpid())  # stands in for the postmaster
        publisher = StatusPublisher(
            run, lambda: build_status(identity(tmp_path), services_of(children, postgres), [])
        )
        await children.start()
        try:
            await publisher.publish_now()
        finally:
            await children.stop()

    asyncio.run(scenario())
    path = status_file(run)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    document = json.loads(path.read_text())
    assert document["format"] == STATUS_FORMAT
    assert document["supervisor"]["pid"] == os.getpid()
    assert document["supervisor"]["version"] == "9.9.9"
    assert document["supervisor"]["start_ticks"] == start_ticks(os.getpid())
    assert [s["name"] for s in document["services"]] == ["postgres", "web", "worker-1"]
    assert [s["kind"] for s in document["services"]] == ["postgres", "web", "worker"]
    assert {s["state"] for s in document["services"]} == {"running"}
    for service in document["services"]:
        assert service["pid"] and service["uptime"] >= 0 and service["started_at"]
        assert service["rss_bytes"] > 0 and service["memory_bytes"] > 0
        assert service["processes"] >= 1
    assert document["restart_targets"] == ["postgres", "web", "worker-1", "workers", "all"]
    assert not list(run.glob(".*"))  # no temporary file left behind

    reading = read_status(run)
    assert reading.status is not None and not reading.stale
    assert reading.age is not None and reading.age < STALE_AFTER


def write_status(tmp_path: Path, run: Path) -> None:
    async def scenario() -> None:
        publisher = StatusPublisher(run, lambda: build_status(identity(tmp_path), [], []))
        await publisher.publish_now()

    asyncio.run(scenario())


def test_an_old_report_of_a_live_supervisor_is_stale(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_status(tmp_path, run)
    old = time.time() - STALE_AFTER - 5
    os.utime(status_file(run), (old, old))
    reading = read_status(run)
    assert reading.status is not None
    assert reading.stale and reading.age is not None and reading.age > STALE_AFTER


def test_a_report_whose_supervisor_is_gone_is_no_supervisor(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_status(tmp_path, run)
    document = json.loads(status_file(run).read_text())
    gone = subprocess.Popen(["true"])
    gone.wait()
    document["supervisor"]["pid"] = gone.pid
    status_file(run).write_text(json.dumps(document))
    reading = read_status(run)
    assert reading.status is None
    assert reading.problem == (
        f"the supervisor that wrote {status_file(run)} (pid {gone.pid}) is not running"
    )


def test_a_reused_pid_is_not_the_supervisor(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_status(tmp_path, run)
    document = json.loads(status_file(run).read_text())
    document["supervisor"]["start_ticks"] += 1  # this pid, but started at another time
    status_file(run).write_text(json.dumps(document))
    assert read_status(run).status is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"{not json", "is not a status this Kiln reads"), (None, "no supervisor has published")],
)
def test_missing_or_unreadable_status_files_are_reported(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    if content is not None:
        status_file(tmp_path).write_bytes(content)
    reading = read_status(tmp_path)
    assert reading.status is None and reading.problem is not None and problem in reading.problem


def test_withdrawing_removes_the_file(tmp_path: Path) -> None:
    write_status(tmp_path, tmp_path)
    assert status_file(tmp_path).exists()
    StatusPublisher(tmp_path, lambda: build_status(identity(tmp_path), [], [])).withdraw()
    assert not status_file(tmp_path).exists()

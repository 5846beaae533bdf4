"""The supervisor's control channel (appliance.supervisor.control): requests written by another
process are taken once, carried out one at a time in order, and reported; anything else in the
directory is dropped."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from appliance.services.supervision import (
    control_directory,
    new_request,
    prepare_control_directory,
    submit,
)
from appliance.supervisor.control import ControlChannel


class Recorder:
    """A restarter that records what it was asked, taking ``seconds`` per restart."""

    def __init__(self, seconds: float = 0.0, fail: str | None = None) -> None:
        self.seconds = seconds
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def restart_targets(self) -> Sequence[str]:
        return ["web", "worker-1", "workers", "all"]

    async def restart(self, target: str) -> str:
        self.calls.append(("start", target))
        await asyncio.sleep(self.seconds)
        self.calls.append(("end", target))
        if target == self.fail:
            raise RuntimeError("the web process would not start")
        return f"restarted {target}"


async def until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def run_channel(tmp_path: Path, restarter: Recorder, requests: list[str]) -> ControlChannel:
    """Start a channel, submit ``requests`` as another process would, wait until all ended."""
    changes: list[int] = []

    async def scenario() -> ControlChannel:
        channel = ControlChannel(tmp_path, restarter, lambda: changes.append(1), poll_interval=0.02)
        channel.prepare()
        task = asyncio.create_task(channel.run())
        for service in requests:
            submit(tmp_path, new_request(service, "alice", datetime.now(UTC)))
        await until(
            lambda: (
                len(channel.records) == len(requests)
                and all(r.state in ("done", "failed") for r in channel.records)
            )
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return channel

    channel = asyncio.run(scenario())
    assert changes, "the status was never told about the requests"
    return channel


def test_the_control_directory_is_private_and_starts_empty(tmp_path: Path) -> None:
    directory = control_directory(tmp_path)
    directory.mkdir()
    (directory / "leftover.json").write_text("{}")
    prepare_control_directory(tmp_path)
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert list(directory.iterdir()) == []


def test_a_request_is_carried_out_once_and_reported(tmp_path: Path) -> None:
    restarter = Recorder()
    channel = run_channel(tmp_path, restarter, ["worker-1"])
    assert restarter.calls == [("start", "worker-1"), ("end", "worker-1")]
    (record,) = channel.records
    assert record.state == "done" and record.message == "restarted worker-1"
    assert record.requested_by == "alice" and record.finished_at is not None
    assert list(control_directory(tmp_path).iterdir()) == []  # taken: it cannot run twice


def test_requests_run_one_at_a_time_in_the_order_they_came(tmp_path: Path) -> None:
    restarter = Recorder(seconds=0.1)
    channel = run_channel(tmp_path, restarter, ["web", "worker-1", "all"])
    assert restarter.calls == [
        ("start", "web"), ("end", "web"),
        ("start", "worker-1"), ("end", "worker-1"),
        ("start", "all"), ("end", "all"),
    ]  # fmt: skip
    assert [record.service for record in channel.records] == ["web", "worker-1", "all"]


def test_an_unknown_service_fails_with_the_allowed_names(tmp_path: Path) -> None:
    restarter = Recorder()
    channel = run_channel(tmp_path, restarter, ["mailer"])
    assert restarter.calls == []
    (record,) = channel.records
    assert record.state == "failed"
    assert record.message == "no service 'mailer' to restart; allowed: web, worker-1, workers, all"


def test_a_failed_restart_is_reported_not_hidden(tmp_path: Path) -> None:
    channel = run_channel(tmp_path, Recorder(fail="web"), ["web"])
    (record,) = channel.records
    assert record.state == "failed"
    assert record.message == "restarting web failed: the web process would not start"


def test_files_that_are_not_requests_are_dropped(tmp_path: Path) -> None:
    restarter = Recorder()
    directory = prepare_control_directory(tmp_path)

    async def scenario() -> ControlChannel:
        channel = ControlChannel(tmp_path, restarter, lambda: None, poll_interval=0.02)
        task = asyncio.create_task(channel.run())
        (directory / "notes.txt").write_text("restart everything please")
        (directory / ("a" * 32 + ".json")).write_text('{"action": "delete", "service": "web"}')
        (directory / ("b" * 32 + ".json")).write_bytes(b"x" * 10_000)
        half = directory / ".cccc.tmp"  # still being written by another process
        half.write_text('{"id": ')
        os.symlink("/etc/passwd", directory / ("d" * 32 + ".json"))
        await until(lambda: sorted(p.name for p in directory.iterdir()) == [".cccc.tmp"])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return channel

    channel = asyncio.run(scenario())
    assert channel.records == [] and restarter.calls == []

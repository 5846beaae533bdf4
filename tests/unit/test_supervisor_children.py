"""The supervisor's child policy with real child processes (small Python programs)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from appliance.supervisor.children import (
    Backoff,
    ChildSpec,
    ChildState,
    CrashLoop,
    Supervisor,
    describe_exit,
)
from appliance.supervisor.notify import Notifier


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def stopper(log: Path, name: str) -> str:
    """A child that records its name in ``log`` when it receives SIGTERM, then exits."""
    return (
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(log)!r}, 'a').write({name!r} + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "while True: time.sleep(0.05)\n"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_children_stop_in_reverse_start_order_and_leave_nothing_behind(tmp_path: Path) -> None:
    log = tmp_path / "stops"

    async def scenario() -> list[int]:
        supervisor = Supervisor(
            [ChildSpec(name, python(stopper(log, name))) for name in ("db", "web", "worker")]
        )
        await supervisor.start()
        await asyncio.sleep(0.5)
        assert [c.state for c in supervisor.children] == [ChildState.RUNNING] * 3
        pids = [c.pid for c in supervisor.children if c.pid is not None]
        await supervisor.stop()
        assert [c.state for c in supervisor.children] == [ChildState.STOPPED] * 3
        return pids

    pids = asyncio.run(scenario())
    assert log.read_text().split() == ["worker", "web", "db"]
    assert not any(alive(pid) for pid in pids)


def test_a_crashed_child_is_restarted_with_its_exit_status_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = tmp_path / "runs"
    # Exits with status 3 on its first two runs, then stays up.
    code = (
        f"import sys, time\nopen({str(counter)!r}, 'a').write('x')\n"
        f"if len(open({str(counter)!r}).read()) < 3: sys.exit(3)\n"
        "time.sleep(30)\n"
    )

    async def scenario() -> Supervisor:
        supervisor = Supervisor(
            [ChildSpec("worker", python(code))], backoff=Backoff(initial=0.05, maximum=0.2)
        )
        await supervisor.start()
        deadline = time.monotonic() + 10
        while supervisor.children[0].restarts < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        state = supervisor.children[0].state
        await supervisor.stop()
        assert state == ChildState.RUNNING
        return supervisor

    with caplog.at_level(logging.WARNING, logger="kiln.supervisor"):
        supervisor = asyncio.run(scenario())
    assert supervisor.children[0].restarts == 2
    assert counter.read_text() == "xxx"
    assert "worker (pid" in caplog.text and "stopped unexpectedly with exit status 3" in caplog.text


def test_a_crash_loop_is_reported_not_hidden(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> ChildState:
        supervisor = Supervisor(
            [ChildSpec("web", python("import sys; sys.exit(7)"))],
            backoff=Backoff(initial=0.01, maximum=0.05),
            crash_loop=CrashLoop(restarts=3, window=30),
        )
        await supervisor.start()
        deadline = time.monotonic() + 10
        while supervisor.children[0].state != ChildState.CRASH_LOOP:
            assert time.monotonic() < deadline, "no crash loop reported"
            await asyncio.sleep(0.02)
        state = supervisor.children[0].state
        await supervisor.stop()
        return state

    with caplog.at_level(logging.ERROR, logger="kiln.supervisor"):
        assert asyncio.run(scenario()) == ChildState.CRASH_LOOP
    assert "web is crash-looping: 3 exits in 30s, the last with exit status 7" in caplog.text


def test_a_child_that_ignores_the_stop_signal_is_killed_after_its_timeout() -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"

    async def scenario() -> tuple[float, str | None, int | None]:
        supervisor = Supervisor([ChildSpec("stubborn", python(code), stop_timeout=0.5)])
        await supervisor.start()
        await asyncio.sleep(0.3)
        pid = supervisor.children[0].pid
        started = time.monotonic()
        await supervisor.stop()
        return time.monotonic() - started, supervisor.children[0].last_exit, pid

    elapsed, last_exit, pid = asyncio.run(scenario())
    assert 0.4 < elapsed < 5
    assert last_exit == "killed by SIGKILL"
    assert pid is not None and not alive(pid)


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "exit status 0"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_readiness_reaches_systemd_s_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.ready("serving on :5000")
        assert server.recv(4096).decode() == "READY=1\nSTATUS=serving on :5000"
        assert notifier.stopping()
        assert server.recv(4096).decode() == "STOPPING=1"


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()

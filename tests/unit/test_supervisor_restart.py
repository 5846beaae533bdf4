"""Restarts an operator asks for (appliance.supervisor.children.Supervisor.restart): graceful,
counted as requested rather than as crashes, and never racing the supervisor's own shutdown."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from appliance.supervisor.children import Backoff, ChildSpec, ChildState, Supervisor


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def stopper(log: Path, name: str, *, linger: float = 0.0) -> list[str]:
    """A child that appends ``name`` to ``log`` on SIGTERM, waits ``linger`` s, then exits."""
    return python(
        "import signal, sys, time\n"
        f"def stop(*_):\n    open({str(log)!r}, 'a').write({name!r} + '\\n')\n"
        f"    time.sleep({linger})\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "while True: time.sleep(0.05)\n"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_requested_restart_stops_gracefully_and_counts_as_requested(tmp_path: Path) -> None:
    log = tmp_path / "stops"
    changes: list[str] = []

    async def scenario() -> tuple[int, int, Supervisor]:
        supervisor = Supervisor(
            [ChildSpec("web", stopper(log, "web")), ChildSpec("worker-1", stopper(log, "w1"))],
            on_change=lambda: changes.append("changed"),
        )
        await supervisor.start()
        await asyncio.sleep(0.3)
        worker = supervisor.child("worker-1")
        before = worker.pid
        assert before is not None
        changes.clear()
        await supervisor.restart("worker-1")
        after = worker.pid
        assert after is not None
        await asyncio.sleep(0.3)
        assert worker.state == ChildState.RUNNING
        await supervisor.stop()
        return before, after, supervisor

    before, after, supervisor = asyncio.run(scenario())
    worker, web = supervisor.child("worker-1"), supervisor.child("web")
    assert before != after and not alive(before) and not alive(after)
    assert log.read_text().split() == ["w1", "w1", "web"]  # SIGTERM at the restart, then stop
    assert (worker.restarts, worker.requested_restarts) == (1, 1)
    assert len(worker.recent_exits) == 0  # not a crash: no backoff, no crash-loop count
    assert (web.restarts, web.requested_restarts) == (0, 0)
    assert len(changes) >= 4  # stopping, stopped, starting, running


def test_a_child_waiting_in_backoff_is_restarted_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    # Crashes on its first run, then stays up.
    code = python(
        f"import sys, time\nopen({str(marker)!r}, 'a').write('x')\n"
        f"if len(open({str(marker)!r}).read()) < 2: sys.exit(5)\n"
        "time.sleep(30)\n"
    )

    async def scenario() -> tuple[ChildState, ChildState, float]:
        supervisor = Supervisor(
            [ChildSpec("worker-1", code)], backoff=Backoff(initial=30, maximum=30)
        )
        await supervisor.start()
        child = supervisor.children[0]
        await wait_for(lambda: child.state == ChildState.BACKOFF)
        waiting = child.state
        started = time.monotonic()
        await supervisor.restart("worker-1")
        took = time.monotonic() - started
        state = child.state
        await wait_for(lambda: marker.read_text() == "xx")
        await supervisor.stop()
        return waiting, state, took

    waiting, state, took = asyncio.run(scenario())
    assert waiting == ChildState.BACKOFF and state == ChildState.RUNNING
    assert took < 5  # not the 30 s backoff
    assert marker.read_text() == "xx"


def test_stopping_during_a_restart_starts_nothing_again(tmp_path: Path) -> None:
    log = tmp_path / "stops"

    async def scenario() -> list[int]:
        supervisor = Supervisor([ChildSpec("worker-1", stopper(log, "w1", linger=0.5))])
        await supervisor.start()
        await asyncio.sleep(0.3)
        first = supervisor.children[0].pid
        assert first is not None
        restart = asyncio.create_task(supervisor.restart("worker-1"))
        await asyncio.sleep(0.1)  # the worker is draining (0.5 s)
        await supervisor.stop()
        await restart
        child = supervisor.children[0]
        assert child.state == ChildState.STOPPED
        assert child.requested_restarts == 0
        return [first]

    pids = asyncio.run(scenario())
    assert not any(alive(pid) for pid in pids)
    assert log.read_text().split() == ["w1"]


def test_restarting_an_unknown_child_names_none() -> None:
    async def scenario() -> None:
        supervisor = Supervisor([])
        try:
            await supervisor.restart("worker-9")
        except KeyError as error:
            assert error.args == ("worker-9",)
        else:  # pragma: no cover - the assertion is the test
            raise AssertionError("restarted a child that does not exist")

    asyncio.run(scenario())

"""A build's step timeline, read from logs written by the build log itself (BuildLog), so the
timeline follows the format builds really write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.builder.buildlog import BuildLog
from appliance.services.timeline import StepState, Timeline, read_timeline, timeline_of
from appliance.storage import ArtifactKind, LocalArtifactStore


def written(run: Callable[[BuildLog], object]) -> list[str]:
    """The lines ``run(log)`` writes to a build log (what it returns is kept alive until they
    are read: a step it left open stays open)."""
    text: list[str] = []
    log = BuildLog(sinks=[text.append])
    kept = run(log)
    lines = "".join(text).splitlines(keepends=True)
    del kept
    return lines


def a_build(log: BuildLog) -> None:
    log.write("build 7 of team/web (key abc)")
    with log.step("prepare"):
        pass
    with log.step("solve"):
        log.write("12 packages for linux-64")
        log.write("solve done in 99.00s")  # a line of the step that only looks like its end
    with log.step("install"):
        log.write("linked 12 packages")
    log.write("build 7 completed")


def a_failed_build(log: BuildLog) -> None:
    with log.step("prepare"):
        pass
    try:
        with log.step("solve"):
            raise RuntimeError("nothing provides kiln-demo-lib >=2")
    except RuntimeError:
        log.write("build failed: nothing provides kiln-demo-lib >=2")


def test_each_step_is_listed_in_order_with_its_duration() -> None:
    timeline = timeline_of(written(a_build), running=False)
    assert [(step.name, step.state) for step in timeline.steps] == [
        ("prepare", StepState.DONE),
        ("solve", StepState.DONE),
        ("install", StepState.DONE),
    ]
    for step in timeline.steps:
        assert step.seconds is not None and 0 <= step.seconds < 5, step
        assert step.started is not None
        assert abs(datetime.now(UTC) - step.started) < timedelta(minutes=1)
    assert timeline.complete and timeline.attempts == 1


def test_a_failed_step_says_so_with_the_error_type() -> None:
    timeline = timeline_of(written(a_failed_build), running=False)
    assert [(step.name, step.state, step.reason) for step in timeline.steps] == [
        ("prepare", StepState.DONE, None),
        ("solve", StepState.FAILED, "RuntimeError"),
    ]
    assert timeline.steps[1].seconds is not None


def test_a_running_step_shows_the_time_since_it_started() -> None:
    lines = [
        "2026-01-02T10:00:00Z [build] build 3 of team/web (key k)\n",
        "2026-01-02T10:00:00Z [prepare] --- prepare ---\n",
        "2026-01-02T10:00:01Z [prepare] prepare done in 0.50s\n",
        "2026-01-02T10:00:01Z [solve] --- solve ---\n",
        "2026-01-02T10:00:05Z [solve] 3 channels read\n",
    ]
    now = datetime(2026, 1, 2, 10, 0, 31, tzinfo=UTC)
    timeline = timeline_of(lines, running=True, now=now)
    prepare, solve = timeline.steps
    assert (prepare.state, prepare.seconds) == (StepState.DONE, 0.5)
    assert solve.state == StepState.RUNNING
    assert solve.started == datetime(2026, 1, 2, 10, 0, 1, tzinfo=UTC)
    assert solve.seconds == 30.0

    # The same log of a build that has ended: the step never finished.
    ended = timeline_of(lines, running=False, now=now)
    assert ended.steps[1].state == StepState.INTERRUPTED
    assert ended.steps[1].seconds is None


def test_a_run_after_an_interrupted_one_starts_a_new_attempt() -> None:
    def retried(log: BuildLog) -> object:
        log.write("build 9 of team/web (key k)")
        with log.step("prepare"):
            pass
        log.write("--- solve ---")  # under [build]: a line of the build, not a step
        solving = log.step("solve")
        solving.__enter__()  # the worker died while solving: the step never ended
        again = BuildLog(sinks=log.sinks)  # the next run's log, appended to the same artifact
        again.write("--- attempt 2 (previous attempt interrupted: worker test:1 died) ---")
        with again.step("prepare"):
            pass
        with again.step("solve"):
            pass
        return solving

    timeline = timeline_of(written(retried), running=False)
    assert [(step.name, step.state, step.attempt) for step in timeline.steps] == [
        ("prepare", StepState.DONE, 1),
        ("solve", StepState.INTERRUPTED, 1),
        ("prepare", StepState.DONE, 2),
        ("solve", StepState.DONE, 2),
    ]
    assert timeline.attempts == 2


def test_lines_it_does_not_recognise_are_skipped() -> None:
    lines = [
        "not a log line\n",
        "\n",
        "2026-01-02T10:00:00Z [install] install done in 2.25s\n",  # its start was not read
        "2026-01-02T10:00:00Z [install] --- something else ---\n",
        "yesterday [lock] --- lock ---\n",  # a stamp that is not one
        "2026-01-02T10:00:03Z [lock] lock failed after 0.10s\n",
    ]
    timeline = timeline_of(lines, running=False)
    assert [(s.name, s.state, s.started, s.seconds, s.reason) for s in timeline.steps] == [
        ("install", StepState.DONE, None, 2.25, None),
        ("lock", StepState.FAILED, None, 0.1, None),
    ]
    assert timeline_of([], running=True) == Timeline()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "storage")


KEY = ArtifactKind.LOGS.storage_key("abc-1")


def test_a_stored_log_is_read_whole_when_it_is_small(store: LocalArtifactStore) -> None:
    assert read_timeline(store, KEY, running=True) == Timeline()  # no log yet
    store.put(KEY, "".join(written(a_build)).encode())
    timeline = read_timeline(store, KEY, running=False)
    assert [step.name for step in timeline.steps] == ["prepare", "solve", "install"]
    assert timeline.complete


def test_a_line_still_being_written_is_left_out(store: LocalArtifactStore) -> None:
    store.put(KEY, b"2026-01-02T10:00:00Z [solve] --- solve ---\n2026-01-02T10:00:01Z [solve] so")
    (step,) = read_timeline(store, KEY, running=True).steps
    assert step.state == StepState.RUNNING
    store.append(KEY, b"lve done in 1.00s")  # still no end of line
    assert read_timeline(store, KEY, running=True).steps[0].state == StepState.RUNNING
    store.append(KEY, b"\n")
    assert read_timeline(store, KEY, running=True).steps[0].state == StepState.DONE


def test_a_long_log_is_read_at_its_start_and_end_only(store: LocalArtifactStore) -> None:
    filler = "".join(
        f"2026-01-02T10:00:02Z [install] linked package-{number:05}\n" for number in range(2000)
    )
    log = (
        "2026-01-02T10:00:00Z [solve] --- solve ---\n"
        "2026-01-02T10:00:01Z [solve] solve done in 1.00s\n"
        "2026-01-02T10:00:01Z [install] --- install ---\n"
        + filler
        + "2026-01-02T10:00:03Z [lock] --- lock ---\n"  # in the middle: not read
        + "2026-01-02T10:00:03Z [lock] lock done in 0.01s\n"
        + filler
        + "2026-01-02T10:00:09Z [install] install done in 8.00s\n"
        "2026-01-02T10:00:09Z [export] --- export ---\n"
        "2026-01-02T10:00:10Z [export] export done in 1.00s\n"
    )
    store.put(KEY, log.encode())
    limit = 64 * 1024
    assert len(log) > 2 * limit
    timeline = read_timeline(store, KEY, running=False, limit=limit)
    assert not timeline.complete
    assert [(step.name, step.state, step.seconds) for step in timeline.steps] == [
        ("solve", StepState.DONE, 1.0),
        ("install", StepState.DONE, 8.0),
        ("export", StepState.DONE, 1.0),
    ]
    whole = read_timeline(store, KEY, running=False)
    assert whole.complete and [step.name for step in whole.steps] == [
        "solve", "install", "lock", "export",
    ]  # fmt: skip

"""Kiln's service logs: the JSON-lines files its processes write (appliance.common.service_log)
and reading them back for the admin API (appliance.services.logs): the latest records by tail,
filters, rotation, the managed PostgreSQL's log, missing files, and following new records."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.common.paths import DataDir
from appliance.common.service_log import (
    SERVICE_NAME_VARIABLE,
    ServiceLogHandler,
    add_service_log,
    handler_configs,
    log_file,
    service_name,
)
from appliance.services.logs import (
    InvalidLogFilter,
    LogFollow,
    known_services,
    latest_records,
    lines_backward,
    start_following,
)
from appliance.services.operations import Installation

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def installation(tmp_path: Path) -> Installation:
    return Installation(data_dir=DataDir(tmp_path / "data"), environ={})


def record_line(
    service: str, seconds: float, message: str, level: str = "INFO", logger: str = "kiln.test"
) -> str:
    moment = (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    return json.dumps(
        {
            "time": moment,
            "service": service,
            "level": level,
            "logger": logger,
            "message": message,
            "pid": 42,
        }
    )


def write(path: Path, *lines: str, end: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write("\n".join(lines) + end)


def messages(installation: Installation, **query: object) -> list[str]:
    return [r.message for r in latest_records(installation, **query).records]  # type: ignore[arg-type]


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[tuple[logging.Logger, ServiceLogHandler]]:
    """A logger of its own (not the root) writing to a service log in ``tmp_path``."""
    handler = ServiceLogHandler(tmp_path / "logs" / "web.jsonl", "web", max_bytes=600, backups=2)
    log = logging.getLogger(f"kiln.test.{tmp_path.name}")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    yield log, handler
    log.removeHandler(handler)
    handler.close()


# --- writing ---------------------------------------------------------------------------------


def test_records_are_written_as_json_lines(
    tmp_path: Path, logger: tuple[logging.Logger, ServiceLogHandler]
) -> None:
    log, _ = logger
    log.info("served %d requests", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("a request failed")
    lines = (tmp_path / "logs" / "web.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["service"] == "web" and first["level"] == "INFO"
    assert first["logger"] == log.name and first["message"] == "served 3 requests"
    assert first["pid"] == os.getpid()
    moment = datetime.fromisoformat(first["time"])
    assert moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)
    assert second["level"] == "ERROR"
    assert second["message"].startswith("a request failed\nTraceback (most recent call last)")
    assert "RuntimeError: boom" in second["message"]


def test_files_are_rotated_by_size_keeping_a_few(
    tmp_path: Path, logger: tuple[logging.Logger, ServiceLogHandler]
) -> None:
    log, _ = logger
    for number in range(40):
        log.info("record %02d %s", number, "x" * 60)
    path = tmp_path / "logs" / "web.jsonl"
    files = [path, path.with_name("web.jsonl.1"), path.with_name("web.jsonl.2")]
    assert all(file.exists() for file in files)
    assert not path.with_name("web.jsonl.3").exists()
    assert all(file.stat().st_size <= 600 for file in files)
    kept = [
        json.loads(line)["message"][:9]
        for file in reversed(files)
        for line in file.read_text().splitlines()
    ]
    assert kept == [f"record {n:02d}" for n in range(40 - len(kept), 40)]  # newest, in order


def test_processes_sharing_a_file_rotate_it_once_and_follow_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "web.jsonl"
    first = ServiceLogHandler(path, "web", max_bytes=500, backups=1)
    second = ServiceLogHandler(path, "web", max_bytes=500, backups=1)
    try:
        for number in range(12):
            handler = first if number % 2 == 0 else second
            handler.handle(
                logging.makeLogRecord({"msg": f"record {number:02d} " + "y" * 40, "levelno": 20})
            )
        lines = [
            json.loads(line)["message"][:9]
            for file in (path.with_name("web.jsonl.1"), path)
            for line in file.read_text().splitlines()
        ]
        # No record lost between the two files, each within its size, both in use.
        assert lines == [f"record {n:02d}" for n in range(12 - len(lines), 12)]
        assert path.stat().st_size <= 500 and path.with_name("web.jsonl.1").stat().st_size <= 500
        line_size = len(path.read_text().splitlines()[0]) + 1
        assert len(lines) >= 2 * (500 // line_size)
        assert not path.with_name("web.jsonl.2").exists()
    finally:
        first.close()
        second.close()


def test_a_file_that_cannot_be_written_is_reported_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the directory should be")
    handler = ServiceLogHandler(blocker / "web.jsonl", "web")
    try:
        for _ in range(3):
            handler.handle(logging.makeLogRecord({"msg": "lost", "levelno": 20}))
    finally:
        handler.close()
    reports = capsys.readouterr().err.splitlines()
    assert len(reports) == 1 and reports[0].startswith(f"kiln: cannot write the log file {blocker}")


def test_the_service_name_comes_from_the_supervisor_when_it_is_a_name() -> None:
    assert service_name("worker", {SERVICE_NAME_VARIABLE: "worker-2"}) == "worker-2"
    assert service_name("worker", {}) == "worker"
    assert service_name("worker", {SERVICE_NAME_VARIABLE: "../../etc/passwd"}) == "worker"


def test_the_root_handler_is_replaced_and_described_for_dict_config(tmp_path: Path) -> None:
    root = logging.getLogger()
    try:
        add_service_log(tmp_path / "a", "web")
        handler = add_service_log(tmp_path / "b", "web")
        ours = [h for h in root.handlers if isinstance(h, ServiceLogHandler)]
        assert ours == [handler]
        (config,) = handler_configs().values()
        assert config["()"] == "appliance.common.service_log.ServiceLogHandler"
        assert config["path"] == str(tmp_path / "b" / "web.jsonl") and config["service"] == "web"
    finally:
        for h in [h for h in root.handlers if isinstance(h, ServiceLogHandler)]:
            root.removeHandler(h)
            h.close()
    assert handler_configs() == {}


# --- reading the latest ------------------------------------------------------------------------


def test_lines_are_read_backwards_without_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "some.log"
    path.write_text("one\ntwo\n\nthree is longer\nfour\nstill being writ")
    for block in (1, 3, 7, 64 * 1024):
        assert list(lines_backward(path, block=block)) == ["four", "three is longer", "two", "one"]
    assert list(lines_backward(path, end=8)) == ["two", "one"]
    assert list(lines_backward(tmp_path / "missing.log")) == []
    path.write_text("no newline yet")
    assert list(lines_backward(path)) == []


def test_the_latest_records_oldest_first(installation: Installation) -> None:
    logs = installation.data_dir.logs
    write(log_file(logs, "web"), *(record_line("web", n, f"web {n}") for n in range(10)))
    assert messages(installation, lines=3) == ["web 7", "web 8", "web 9"]
    assert messages(installation, service="web", lines=0) == []
    assert len(messages(installation)) == 10


def test_services_are_merged_by_time_and_filtered(installation: Installation) -> None:
    logs = installation.data_dir.logs
    write(
        log_file(logs, "supervisor"),
        record_line("supervisor", 0, "starting"),
        record_line("supervisor", 5, "worker-1 exited", level="WARNING"),
    )
    write(
        log_file(logs, "worker-1"),
        record_line("worker-1", 1, "build 1 started", level="DEBUG"),
        record_line("worker-1", 4, "build 1 failed", level="ERROR"),
    )
    write(log_file(logs, "web"), record_line("web", 2, "serving"))
    answer = latest_records(installation)
    assert [(r.service, r.message) for r in answer.records] == [
        ("supervisor", "starting"),
        ("worker-1", "build 1 started"),
        ("web", "serving"),
        ("worker-1", "build 1 failed"),
        ("supervisor", "worker-1 exited"),
    ]
    assert answer.services == ["supervisor", "postgres", "web", "worker-1"]
    record = answer.records[-1]
    assert record.level == "WARNING" and record.logger == "kiln.test" and record.pid == 42
    assert record.time == T0 + timedelta(seconds=5)
    assert messages(installation, level="warning") == ["build 1 failed", "worker-1 exited"]
    assert messages(installation, level="ERROR", lines=1) == ["build 1 failed"]
    assert messages(installation, service="worker-1") == ["build 1 started", "build 1 failed"]


def test_rotated_files_are_read_when_the_current_one_has_too_few(
    installation: Installation,
) -> None:
    path = log_file(installation.data_dir.logs, "web")
    write(path.with_name("web.jsonl.2"), *(record_line("web", n, f"r{n}") for n in range(0, 3)))
    write(path.with_name("web.jsonl.1"), *(record_line("web", n, f"r{n}") for n in range(3, 6)))
    write(path, record_line("web", 6, "r6"), record_line("web", 7, "oops", level="ERROR"))
    assert messages(installation, lines=4) == ["r4", "r5", "r6", "oops"]
    assert messages(installation, lines=100) == [*(f"r{n}" for n in range(7)), "oops"]
    write(path.with_name("web.jsonl.1"), record_line("web", 5.5, "bad", level="ERROR"))
    assert messages(installation, level="ERROR") == ["bad", "oops"]


def test_missing_files_and_broken_lines_are_no_error(installation: Installation) -> None:
    assert latest_records(installation).records == []
    assert messages(installation, service="postgres") == []
    path = log_file(installation.data_dir.logs, "web")
    write(path, "not json", "[1, 2]", '{"time": "yesterday"}', record_line("web", 1, "fine"))
    assert messages(installation) == ["fine"]


def test_unknown_services_levels_and_counts_are_refused(installation: Installation) -> None:
    write(log_file(installation.data_dir.logs, "worker-1"), record_line("worker-1", 0, "hi"))
    with pytest.raises(InvalidLogFilter) as refused:
        latest_records(installation, service="mailer")
    assert refused.value.message == (
        "no service 'mailer' has a log here; known services: supervisor, postgres, web, worker-1"
    )
    with pytest.raises(InvalidLogFilter) as refused:
        latest_records(installation, service="../secrets/jwt")
    assert "known services" in refused.value.message
    with pytest.raises(InvalidLogFilter) as refused:
        latest_records(installation, level="LOUD")
    assert refused.value.message.startswith(
        "level 'LOUD' is not a log level; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    for lines in (-1, 10_001):
        with pytest.raises(InvalidLogFilter, match="lines must be from 0 to 10000"):
            latest_records(installation, lines=lines)


def test_known_services_include_rotated_ones_and_sort_workers_by_number(
    installation: Installation,
) -> None:
    logs = installation.data_dir.logs
    for name in ("worker-10.jsonl", "worker-2.jsonl.1", "worker.jsonl", "web.jsonl.lock"):
        write(logs / name, "")
    (logs / "notes.txt").write_text("")
    assert known_services(installation) == [
        "supervisor", "postgres", "web", "worker", "worker-2", "worker-10"
    ]  # fmt: skip


POSTGRES_LOG = """\
--- initdb (2025-03-01 12:59:59)
The files belonging to this database system will be owned by user "kiln-postgres".

creating subdirectories ... ok
--- start (2025-03-01 13:00:00)
2025-03-01 12:00:00.100 UTC [100] LOG:  starting PostgreSQL 17.2 on x86_64-pc-linux-gnu
2025-03-01 12:00:00.200 UTC [100] LOG:  database system is ready to accept connections
2025-03-01 12:00:01.000 UTC [200] ERROR:  relation "nope" does not exist at character 15
2025-03-01 12:00:01.000 UTC [200] STATEMENT:  SELECT * FROM nope
\tWHERE true
2025-03-01 12:00:02.000 UTC [201] FATAL:  role "mallory" does not exist
2025-03-01 12:00:03.000 +02 [202] WARNING:  there is no transaction in progress
2025-03-01 12:00:04.000 UTC [100] DEBUG3:  checkpoint
""" + (
    "2025-03-01 12:00:05.000 UTC [203] ERROR:  duplicate key value violates unique constraint "
    '"procrastinate_jobs_queueing_lock_idx_v1"\n'
    "2025-03-01 12:00:05.000 UTC [203] DETAIL:  Key (queueing_lock)=(kiln.collect_image_blobs) "
    "already exists.\n"
)


def test_the_postgres_log_is_parsed_for_levels_and_continued_lines(
    installation: Installation,
) -> None:
    write(installation.data_dir.postgres_log, POSTGRES_LOG, end="")
    records = latest_records(installation, service="postgres").records
    assert [(r.level, r.pid) for r in records] == [
        ("INFO", None),
        ("INFO", None),
        ("INFO", 100),
        ("INFO", 100),
        ("ERROR", 200),
        ("CRITICAL", 201),
        ("WARNING", 202),
        ("DEBUG", 100),
        ("INFO", 203),  # Procrastinate's "already queued": expected, not an error
    ]
    initdb, marker, first = records[0], records[1], records[2]
    assert initdb.message == (
        "Kiln created the cluster (initdb)\n"
        'The files belonging to this database system will be owned by user "kiln-postgres".\n'
        "creating subdirectories ... ok"
    )
    assert marker.message == "Kiln started the server"
    assert marker.time == datetime(2025, 3, 1, 13, 0, 0).astimezone()  # local time
    assert first.time == datetime(2025, 3, 1, 12, 0, 0, 100_000, tzinfo=UTC)
    assert first.service == "postgres" and first.logger == "postgres"
    assert records[4].message == (
        'relation "nope" does not exist at character 15\n'
        "STATEMENT:  SELECT * FROM nope\n\tWHERE true"
    )
    assert records[6].time == datetime(2025, 3, 1, 10, 0, 3, tzinfo=UTC)
    assert records[8].message.startswith("duplicate key value violates unique constraint")
    assert "expected: that job is already queued" in records[8].message
    errors = latest_records(installation, service="postgres", level="ERROR").records
    assert [r.level for r in errors] == ["ERROR", "CRITICAL"]


# --- following -------------------------------------------------------------------------------


async def collect(follow: LogFollow, count: int, timeout: float = 10) -> list[dict[str, object]]:
    """The first ``count`` records the follow streams (blank keepalive lines skipped)."""
    found: list[dict[str, object]] = []
    stream = follow.stream()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                for line in chunk.decode().splitlines():
                    if line.strip():
                        found.append(json.loads(line))
                if len(found) >= count:
                    return found
    finally:
        await stream.aclose()
    return found


def test_following_sends_the_latest_then_new_records(installation: Installation) -> None:
    path = log_file(installation.data_dir.logs, "web")
    write(path, *(record_line("web", n, f"old {n}") for n in range(5)))
    write(path, record_line("web", 5, "half"), end="")  # still being written

    async def scenario() -> list[dict[str, object]]:
        follow = start_following(installation, service="web", lines=2, poll=0.01)
        assert [r.message for r in follow.first] == ["old 3", "old 4"]

        async def later() -> None:
            await asyncio.sleep(0.1)
            write(path, "")  # the half-written line ends
            write(path, record_line("web", 6, "new", level="ERROR"))

        writer = asyncio.create_task(later())
        found = await collect(follow, 4)
        await writer
        return found

    found = asyncio.run(scenario())
    assert [r["message"] for r in found] == ["old 3", "old 4", "half", "new"]
    assert found[-1]["level"] == "ERROR" and found[-1]["service"] == "web"
    assert datetime.fromisoformat(str(found[-1]["time"])) == T0 + timedelta(seconds=6)


def test_following_goes_on_in_the_new_file_after_a_rotation(installation: Installation) -> None:
    logs = installation.data_dir.logs
    path = log_file(logs, "worker-1")
    write(path, record_line("worker-1", 0, "before"))

    async def scenario() -> list[dict[str, object]]:
        follow = start_following(installation, lines=0, level="INFO", poll=0.01)
        assert follow.first == []

        async def later() -> None:
            await asyncio.sleep(0.05)
            write(path, record_line("worker-1", 1, "last words of the old file"))
            path.rename(path.with_name("worker-1.jsonl.1"))
            write(path, record_line("worker-1", 2, "ignored", level="DEBUG"))
            write(path, record_line("worker-1", 3, "first of the new file"))
            await asyncio.sleep(0.05)
            write(log_file(logs, "web"), record_line("web", 4, "a new service file"))

        writer = asyncio.create_task(later())
        found = await collect(follow, 3)
        await writer
        return found

    found = asyncio.run(scenario())
    assert [r["message"] for r in found] == [
        "last words of the old file",
        "first of the new file",
        "a new service file",
    ]


def test_following_postgres_attaches_continued_lines(installation: Installation) -> None:
    path = installation.data_dir.postgres_log
    write(path, "2025-03-01 12:00:00.000 UTC [1] LOG:  ready")

    async def scenario() -> list[dict[str, object]]:
        follow = start_following(installation, service="postgres", lines=1, poll=0.01)

        async def later() -> None:
            await asyncio.sleep(0.05)
            write(
                path,
                "2025-03-01 12:00:01.000 UTC [7] ERROR:  syntax error",
                "2025-03-01 12:00:01.000 UTC [7] STATEMENT:  SELEC 1",
            )

        writer = asyncio.create_task(later())
        found = await collect(follow, 2)
        await writer
        return found

    first, error = asyncio.run(scenario())
    assert first["message"] == "ready"
    assert error["level"] == "ERROR" and error["pid"] == 7
    assert error["message"] == "syntax error\nSTATEMENT:  SELEC 1"


def test_an_idle_follow_sends_keepalive_lines(installation: Installation) -> None:
    async def scenario() -> list[bytes]:
        follow = start_following(installation, lines=0, poll=0.01, keepalive=0.03)
        stream = follow.stream()
        try:
            return [await anext(stream), await anext(stream)]
        finally:
            await stream.aclose()

    assert asyncio.run(scenario()) == [b"\n", b"\n"]


def test_following_checks_its_filter_first(installation: Installation) -> None:
    with pytest.raises(InvalidLogFilter, match="known services"):
        start_following(installation, service="mailer")
    with pytest.raises(InvalidLogFilter, match="not a log level"):
        start_following(installation, level="verbose")

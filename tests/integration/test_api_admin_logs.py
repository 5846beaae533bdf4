"""Service logs through the admin API (``GET /api/v1/admin/logs/``) on the real app: the latest
records with their filters, rotated and missing files, the services there are (the supervisor's
too), every kind of bad input; and, against a real ``kiln web`` (its own log file included),
the admin console's client reading and following them.

The log files are written here as Kiln's processes write them (appliance.common.service_log);
tests/unit/test_service_logs.py covers the reading in detail, tests/e2e/test_serve_admin.py a
whole ``kiln serve``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from appliance.common.service_log import log_file
from appliance.config.loader import KilnConfig
from tests.fixtures.api import Callers
from tests.fixtures.browser import LiveKiln
from tests.integration.test_api_admin import PlayedSupervisor
from tui.admin import LogRecord
from tui.client import KilnApiError, KilnClient

Client = TestClient[Litestar]

LOGS = "/api/v1/admin/logs/"
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def line(service: str, seconds: float, message: str, level: str = "INFO") -> str:
    moment = (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    return json.dumps(
        {"time": moment, "service": service, "level": level, "logger": "kiln.test",
         "message": message, "pid": 7}
    )  # fmt: skip


def append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write("".join(f"{text}\n" for text in lines))


@pytest.fixture
def logs_dir(kiln_config: KilnConfig) -> Path:
    return kiln_config.data_dir.logs


def answer(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def messages(response: Any) -> list[str]:
    return [record["message"] for record in answer(response)["records"]]


def refusal(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    problems = [f"{e['key']}: {e['message']}" for e in body.get("errors") or []]
    return "; ".join([body["message"], *problems])


def test_only_operators_read_the_logs(api: Client, callers: Callers) -> None:
    for query in ({}, {"follow": "true"}):
        assert api.get(LOGS, params=query).status_code == 401
        for headers in (
            callers.session_headers(f"u{len(query)}"),
            callers.headers({"*/*": ["editor"]}),
        ):
            refused = api.get(LOGS, params=query, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "admin role on every namespace" in refused.json()["message"]


def test_without_log_files_the_answer_is_empty(api: Client, callers: Callers) -> None:
    data = answer(api.get(LOGS, headers=callers.admin))
    assert data == {"records": [], "services": ["supervisor", "postgres", "web"]}
    for service in ("supervisor", "postgres", "web"):
        assert messages(api.get(LOGS, params={"service": service}, headers=callers.admin)) == []


def test_the_latest_records_filtered_by_service_and_level(
    api: Client, callers: Callers, logs_dir: Path
) -> None:
    append(log_file(logs_dir, "supervisor"), line("supervisor", 0, "started web (pid 10)"))
    append(
        log_file(logs_dir, "worker-1"),
        line("worker-1", 1, "build 1 started", "DEBUG"),
        line("worker-1", 3, "build 1 failed: no such package", "ERROR"),
    )
    append(log_file(logs_dir, "web"), *(line("web", 2 + n / 10, f"request {n}") for n in range(5)))
    response = api.get(LOGS, headers=callers.admin)
    data = answer(response)
    assert data["services"] == ["supervisor", "postgres", "web", "worker-1"]
    assert [r["message"] for r in data["records"]] == [
        "started web (pid 10)",
        "build 1 started",
        *(f"request {n}" for n in range(5)),
        "build 1 failed: no such package",
    ]
    last = data["records"][-1]
    assert last == {
        "time": "2025-03-01T12:00:03Z",
        "service": "worker-1",
        "level": "ERROR",
        "logger": "kiln.test",
        "message": "build 1 failed: no such package",
        "pid": 7,
    }
    admin = callers.admin
    assert messages(api.get(LOGS, params={"lines": 2}, headers=admin)) == [
        "request 4", "build 1 failed: no such package"
    ]  # fmt: skip
    assert messages(api.get(LOGS, params={"service": "web", "lines": 2}, headers=admin)) == [
        "request 3", "request 4"
    ]  # fmt: skip
    assert messages(api.get(LOGS, params={"level": "warning"}, headers=admin)) == [
        "build 1 failed: no such package"
    ]
    assert messages(api.get(LOGS, params={"service": "web", "level": "ERROR"}, headers=admin)) == []
    assert messages(api.get(LOGS, params={"lines": 0}, headers=admin)) == []


def test_rotated_files_and_the_postgres_log_are_read(
    api: Client, callers: Callers, kiln_config: KilnConfig, logs_dir: Path
) -> None:
    current = log_file(logs_dir, "web")
    append(current.with_name("web.jsonl.1"), line("web", 0, "before the rotation"))
    append(current, line("web", 1, "after the rotation"))
    append(
        kiln_config.data_dir.postgres_log,
        "2025-03-01 12:00:00.500 UTC [99] LOG:  database system is ready to accept connections",
        '2025-03-01 12:00:02.000 UTC [123] FATAL:  role "mallory" does not exist',
    )
    response = api.get(LOGS, headers=callers.admin)
    assert [(r["service"], r["level"], r["message"]) for r in answer(response)["records"]] == [
        ("web", "INFO", "before the rotation"),
        ("postgres", "INFO", "database system is ready to accept connections"),
        ("web", "INFO", "after the rotation"),
        ("postgres", "CRITICAL", 'role "mallory" does not exist'),
    ]


def test_the_services_the_supervisor_runs_may_be_asked_for(
    api: Client, callers: Callers, kiln_config: KilnConfig
) -> None:
    PlayedSupervisor(kiln_config.data_dir.run).publish("postgres", "web", "worker-1", "worker-2")
    data = answer(api.get(LOGS, params={"service": "worker-2"}, headers=callers.admin))
    assert data == {
        "records": [],
        "services": ["supervisor", "postgres", "web", "worker-1", "worker-2"],
    }


def test_bad_requests_say_what_is_allowed(api: Client, callers: Callers, logs_dir: Path) -> None:
    append(log_file(logs_dir, "worker-1"), line("worker-1", 0, "hello"))
    for query, says in (
        ({"service": "mailer"}, "no service 'mailer' has a log here; known services: "
                                "supervisor, postgres, web, worker-1"),
        ({"service": "../secrets/jwt"}, "known services: supervisor, postgres, web, worker-1"),
        ({"level": "LOUD"}, "level 'LOUD' is not a log level; allowed: DEBUG, INFO, WARNING, "
                            "ERROR, CRITICAL"),
        ({"lines": -1}, "lines"),
        ({"lines": 10_001}, "lines"),
        ({"lines": "many"}, "lines"),
        ({"follow": "maybe"}, "follow"),
        ({"follow": "true", "service": "mailer"}, "known services"),
        ({"follow": "true", "level": "LOUD"}, "not a log level"),
    ):  # fmt: skip
        message = refusal(api.get(LOGS, params=query, headers=callers.admin))
        assert says in message, (query, message)


def test_follow_is_described_but_not_a_schema_parameter(api: Client) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/api/v1/admin/logs"]["get"]
    assert operation["operationId"] == "get_service_logs"
    assert sorted(p["name"] for p in operation["parameters"]) == ["level", "lines", "service"]
    assert "follow=true" in operation["description"]
    assert "application/x-ndjson" in operation["description"]
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


# --- the console's client against a real kiln web ----------------------------------------------


async def first_records(follow: AsyncIterator[LogRecord], count: int) -> list[LogRecord]:
    """The first ``count`` records ``follow`` yields (10 s at most)."""
    found: list[LogRecord] = []
    async with asyncio.timeout(10):
        async for record in follow:
            found.append(record)
            if len(found) >= count:
                break
    return found


def test_the_console_reads_and_follows_a_live_kiln_web(
    live_kiln: LiveKiln, callers: Callers, kiln_config: KilnConfig
) -> None:
    token = callers.token({"*/*": ["admin"]})
    logs_dir = kiln_config.data_dir.logs
    worker_log = log_file(logs_dir, "worker")

    async def scenario() -> tuple[Sequence[LogRecord], Sequence[LogRecord], list[LogRecord], str]:
        client = KilnClient(live_kiln.url, token)
        try:
            # kiln web writes its own log: its start is in it.
            deadline = time.monotonic() + 20
            while True:
                web = (await client.service_logs(service="web")).records
                if any("serving on" in r.message for r in web) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            await asyncio.to_thread(append, worker_log, line("worker", 0, "an older record"))
            listed = (await client.service_logs(level="INFO", lines=50)).records
            # Following: only what is written after it starts.
            follow = client.follow_service_logs(service="worker", level="WARNING", lines=0)
            writer = asyncio.create_task(write_later())
            followed = await first_records(follow, 2)
            await writer
            await follow.aclose()  # type: ignore[attr-defined]
            try:
                await client.service_logs(service="mailer")
            except KilnApiError as error:
                refused = error.message
            else:
                refused = "(accepted)"
            return web, listed, followed, refused
        finally:
            await client.aclose()

    async def write_later() -> None:
        await asyncio.sleep(1.0)  # the follow has begun (it polls twice a second)
        await asyncio.to_thread(
            append,
            worker_log,
            line("worker", 10, "quiet", "INFO"),
            line("worker", 11, "build 3 failed", "ERROR"),
        )
        await asyncio.sleep(0.7)
        await asyncio.to_thread(
            append, worker_log, line("worker", 12, "disk almost full", "WARNING")
        )

    web, listed, followed, refused = asyncio.run(scenario())
    assert any(r.service == "web" and "serving on" in r.message for r in web), live_kiln.output()
    assert all(r.logger and r.time is not None and r.level in ("DEBUG", "INFO", "WARNING",
               "ERROR", "CRITICAL") for r in web)  # fmt: skip
    assert listed[0].message == "an older record"  # written with a time long ago
    assert {r.service for r in listed} >= {"web", "worker"}
    assert [(r.service, r.level, r.message) for r in followed] == [
        ("worker", "ERROR", "build 3 failed"),
        ("worker", "WARNING", "disk almost full"),
    ]
    assert followed[0].time == T0 + timedelta(seconds=11)
    assert refused.startswith("no service 'mailer' has a log here; known services: supervisor,")

"""The admin API against a live ``kiln serve`` from source: the services the real supervisor
reports, a worker restarted through the API, and a configuration change written to the file
and applied with that restart. One ``kiln serve`` for the module (two shared cores)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kiln import ServedKiln, served_kiln


@pytest.fixture(scope="module")
def served(demo_channel: Path) -> Iterator[ServedKiln]:
    with served_kiln(demo_channel, prefix="kiln-admin-test-") as kiln:
        yield kiln


@pytest.fixture(scope="module")
def token(served: ServedKiln) -> str:
    return served.mint_token()


def call(served: ServedKiln, token: str, method: str, path: str, body: Any = None) -> Any:
    """``(status, JSON body)`` of a request to the served Kiln."""
    request = urllib.request.Request(
        f"{served.url}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def services(served: ServedKiln, token: str) -> dict[str, Any]:
    status, body = call(served, token, "GET", "/api/v1/admin/services/")
    assert status == 200, body
    return dict(body["data"])


def until(condition: Callable[[], Any], timeout: float, what: str, served: ServedKiln) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout:g}s:\n{served.output()}")


def ready(served: ServedKiln) -> bool:
    try:
        with urllib.request.urlopen(f"{served.url}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:  # HTTPError (503: not ready yet) included
        return False


def by_name(overview: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {service["name"]: service for service in overview["services"]}


def test_the_supervisor_reports_its_services(served: ServedKiln, token: str) -> None:
    def with_granian_worker() -> dict[str, Any] | None:
        # Memory is measured when the status is written (every 2 s): wait for a report written
        # after granian started its worker process.
        overview = services(served, token)
        web = by_name(overview).get("web", {})
        return overview if (web.get("processes") or 0) >= 2 else None

    overview = until(with_granian_worker, 15, "no report with the web's worker process", served)
    assert overview["supervised"] is True and overview["stale"] is False, overview
    assert overview["supervisor"]["data_dir"] == str(served.data_dir)
    assert overview["supervisor"]["pid"] == served.process.pid
    found = by_name(overview)
    assert list(found) == ["postgres", "web", "worker-1"]
    for name, service in found.items():
        assert service["state"] == "running", (name, service)
        assert service["pid"] and service["uptime"] > 0, (name, service)
        assert service["memory_bytes"] > 10_000_000, (name, service)  # each runs Python or Postgres
    assert found["postgres"]["processes"] >= 2  # the postmaster and its helpers
    assert overview["restart_targets"] == ["postgres", "web", "worker-1", "workers", "all"]


def test_the_logs_of_the_supervisor_web_worker_and_postgres_are_read_and_followed(
    served: ServedKiln, token: str
) -> None:
    def services_logged() -> dict[str, list[dict[str, Any]]] | None:
        status, body = call(served, token, "GET", "/api/v1/admin/logs/?lines=2000")
        assert status == 200, body
        found: dict[str, list[dict[str, Any]]] = {}
        for record in body["data"]["records"]:
            found.setdefault(record["service"], []).append(record)
        wanted = {"supervisor", "web", "worker-1", "postgres"}
        return found if wanted <= set(found) else None

    found = until(services_logged, 30, "not every service's log has records", served)
    supervisor = [r["message"] for r in found["supervisor"]]
    assert any(m.startswith("started web (pid ") for m in supervisor), supervisor
    assert any(m.startswith("started worker-1 (pid ") for m in supervisor), supervisor
    assert any(m.startswith("serving on http://") for m in (r["message"] for r in found["web"]))
    assert {r["pid"] for r in found["worker-1"]} - {None}
    assert any("ready to accept connections" in r["message"] for r in found["postgres"])
    status, body = call(served, token, "GET", "/api/v1/admin/logs/?service=worker-1&level=ERROR")
    assert status == 200 and all(
        r["level"] in ("ERROR", "CRITICAL") for r in body["data"]["records"]
    )

    # Following: the supervisor logs a warning about a stray file in its control directory.
    request = urllib.request.Request(
        f"{served.url}/api/v1/admin/logs/?follow=true&service=supervisor&level=WARNING&lines=0",
        headers={"Authorization": f"Bearer {token}"},
    )
    stray = served.data_dir / "run" / "control" / "not-a-request.txt"
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        time.sleep(1.0)  # the follow has noted where the files end
        stray.write_text("restart everything, please")
        deadline = time.monotonic() + 20
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            line = response.readline()  # a record, or an empty line every 15 s
            if line.strip():
                record = json.loads(line)
                break
    assert record["service"] == "supervisor" and record["level"] == "WARNING", record
    assert record["message"] == (
        "ignored not-a-request.txt in the control directory: not a request file name"
    )
    assert record["logger"] == "kiln.supervisor" and record["pid"] == served.process.pid
    assert not stray.exists()


def test_a_configuration_change_is_written_and_applied_with_a_worker_restart(
    served: ServedKiln, token: str
) -> None:
    config = served.data_dir / "kiln_config.py"
    config.write_text(
        config.read_text() + "# builds at a time: this VM is small\n"
        "c.CondaStoreWorker.concurrency = 1  # raise with care\n"
    )
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 3}
    status, answer = call(served, token, "PATCH", "/api/v1/admin/config/", body)
    assert status == 200, answer
    change = answer["data"]
    assert change["action"] == "replaced" and change["written"] is True
    assert change["config_file"] == str(config)
    text = config.read_text()
    assert "# builds at a time: this VM is small\n" in text
    assert "c.CondaStoreWorker.concurrency = 3  # raise with care\n" in text
    assert "concurrency = 1" not in text
    restart = change["restart"]
    assert restart["needed"] is True and restart["targets"] == ["workers"], restart

    before = by_name(services(served, token))["worker-1"]
    status, answer = call(served, token, "POST", "/api/v1/admin/services/workers/restart/")
    assert status == 202, answer
    request_id = answer["data"]["id"]
    assert answer["data"]["restarts"] == ["worker-1"]

    def restarted() -> dict[str, Any] | None:
        overview = services(served, token)
        worker = by_name(overview)["worker-1"]
        done = [r for r in overview["requests"] if r["id"] == request_id and r["state"] == "done"]
        if done and worker["state"] == "running" and worker["pid"] != before["pid"]:
            return worker
        return None

    worker = until(restarted, 60, "worker-1 was not restarted", served)
    assert worker["restarts"] == before["restarts"] + 1
    assert worker["requested_restarts"] == before["requested_restarts"] + 1

    effective = call(served, token, "GET", "/api/v1/admin/config/")[1]["data"]
    (section,) = [s for s in effective["sections"] if s["class"] == "CondaStoreWorker"]
    (option,) = [o for o in section["options"] if o["name"] == "concurrency"]
    assert option["value"] == 3 and option["source"] == f"file {config}"
    # The restarted worker is up: its heartbeat makes Kiln ready again.
    until(lambda: ready(served), 60, "/readyz did not say ready after the restart", served)


def test_an_unknown_service_is_refused(served: ServedKiln, token: str) -> None:
    status, answer = call(served, token, "POST", "/api/v1/admin/services/worker-7/restart/")
    assert status == 400, answer
    assert answer["message"] == (
        "no service 'worker-7' to restart; allowed: postgres, web, worker-1, workers, all"
    )


def test_restarting_everything_restarts_postgres_web_and_workers_in_order(
    served: ServedKiln, token: str
) -> None:
    before = by_name(services(served, token))
    status, answer = call(served, token, "POST", "/api/v1/admin/services/all/restart/")
    assert status == 202, answer
    assert answer["data"]["restarts"] == ["postgres", "web", "worker-1"]
    request_id = answer["data"]["id"]

    def finished() -> dict[str, Any] | None:
        try:
            overview = services(served, token)
        except (OSError, AssertionError):  # the web process is restarting
            return None
        done = [r for r in overview["requests"] if r["id"] == request_id]
        return overview if done and done[0]["state"] in ("done", "failed") else None

    overview = until(finished, 90, "the restart of everything did not finish", served)
    (record,) = [r for r in overview["requests"] if r["id"] == request_id]
    assert record["state"] == "done", record
    assert record["message"] == "restarted postgres, web, worker-1"
    after = by_name(overview)
    for name in ("postgres", "web", "worker-1"):
        assert after[name]["state"] == "running", after[name]
        assert after[name]["pid"] != before[name]["pid"], name
        assert after[name]["requested_restarts"] == before[name]["requested_restarts"] + 1
    until(lambda: ready(served), 60, "/readyz did not say ready after the restart", served)

"""The admin API (``/api/v1/admin/``) on the real app and database: the supervisor's services
and restart requests, queue statistics, jobs and their retry and cancel, the effective
configuration and changes to it; who may, and every kind of bad input.

The supervisor's side is played by this test process where a whole ``kiln serve`` is not needed:
it publishes a status file as the supervisor does (appliance.supervisor.status writes the same
structs) and reads the control directory as the supervisor does. tests/e2e/test_serve_admin.py
runs the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.config.loader import KilnConfig
from appliance.db.models import StorageSample
from appliance.queue.tasks import DELETE_BUILD, REFRESH_CHANNELS
from appliance.services.builds import defer_job
from appliance.services.supervision import (
    STALE_AFTER,
    STATUS_FORMAT,
    PublishedStatus,
    ServiceStatus,
    SupervisorInfo,
    prepare_control_directory,
    publish,
    restart_targets,
    start_ticks,
    status_file,
    take_requests,
)
from tests.fixtures.api import Callers
from tests.fixtures.mounts import tmpfs
from tests.fixtures.postgres import TestDatabase
from tests.integration.test_api_builds import TOOL, Builds, explanation

Client = TestClient[Litestar]

#: The test configuration's own lines (the fixture adds the demo channel before them).
CONFIG_LINES = [
    "# Workers: two builds at a time, this VM has 8 GB",
    "c.CondaStoreWorker.concurrency = 2  # keep it low",
    "c.CondaStoreServer.secret_key = 'a-secret-nobody-may-read-0123456789'",
]


@pytest.fixture
def kiln_config_lines() -> list[str]:
    return list(CONFIG_LINES)


@pytest.fixture
def config_file(kiln_config: KilnConfig) -> Path:
    return kiln_config.data_dir.config_file


@pytest.fixture
def builds(
    db_sessions: sessionmaker[Session], api_context: ApiContext, database: TestDatabase
) -> Builds:
    return Builds(db_sessions, api_context, database)


def data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def refusal(response: Any, status: int) -> str:
    """The message of a refusal with ``status`` (and each bad parameter Litestar named)."""
    assert response.status_code == status, response.text
    return explanation(response)


# --- who may -----------------------------------------------------------------------------------


ROUTES = [
    ("GET", "/api/v1/admin/services/"),
    ("POST", "/api/v1/admin/services/web/restart/"),
    ("GET", "/api/v1/admin/queue/"),
    ("GET", "/api/v1/admin/jobs/"),
    ("GET", "/api/v1/admin/jobs/1/"),
    ("POST", "/api/v1/admin/jobs/1/retry/"),
    ("POST", "/api/v1/admin/jobs/1/cancel/"),
    ("GET", "/api/v1/admin/config/"),
]


def test_only_operators_may_use_the_admin_api(api: Client, callers: Callers) -> None:
    admin_account = callers.session_headers("root", admin=True)
    plain_account = callers.session_headers("alice")
    editor_everywhere = callers.headers({"*/*": ["editor"]})
    admin_of_a_namespace = callers.headers({"team/*": ["admin"]})
    for method, path in ROUTES:
        anonymous = api.request(method, path)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert "admin API needs an admin account" in anonymous.json()["message"]
        for headers in (plain_account, editor_everywhere, admin_of_a_namespace):
            refused = api.request(method, path, headers=headers)
            assert refused.status_code == 403, (method, path, refused.text)
            assert "admin role on every namespace" in refused.json()["message"]
        for headers in (admin_account, callers.admin):
            allowed = api.request(method, path, headers=headers)
            assert allowed.status_code not in (401, 403), (method, path, allowed.text)
            assert allowed.status_code < 500, (method, path, allowed.text)


# --- services ----------------------------------------------------------------------------------


def test_without_a_supervisor_the_status_says_so(api: Client, callers: Callers) -> None:
    response = api.get("/api/v1/admin/services/", headers=callers.admin)
    overview = data(response)
    assert overview["supervised"] is False
    assert overview["services"] == [] and overview["supervisor"] is None
    assert overview["message"].startswith("no supervisor: no supervisor has published a status")
    assert "not started by `kiln serve`" in overview["message"]


def test_without_a_supervisor_a_restart_is_a_conflict(api: Client, callers: Callers) -> None:
    message = refusal(api.post("/api/v1/admin/services/web/restart/", headers=callers.admin), 409)
    assert message.startswith("cannot restart web: no supervisor runs this Kiln")
    assert "systemctl restart kiln" in message


class PlayedSupervisor:
    """This test process in the supervisor's place: it publishes a status file naming itself
    (so it counts as running) and reads restart requests."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        prepare_control_directory(run_dir)

    def publish(self, *names: str, state: str = "running") -> None:
        services = [
            ServiceStatus(
                name=name,
                kind="postgres" if name == "postgres" else "web" if name == "web" else "worker",
                state=state,
                pid=os.getpid(),
                started_at=datetime.now(UTC),
                uptime=12.0,
                restarts=1,
                requested_restarts=1,
                rss_bytes=50_000_000,
                memory_bytes=60_000_000,
                processes=2,
            )
            for name in names
        ]
        status = PublishedStatus(
            format=STATUS_FORMAT,
            written_at=datetime.now(UTC),
            supervisor=SupervisorInfo(
                pid=os.getpid(),
                version="test",
                data_dir=str(self.run_dir.parent),
                config_file=None,
                started_at=datetime.now(UTC),
                uptime=100.0,
                start_ticks=start_ticks(os.getpid()),
            ),
            services=services,
            restart_targets=restart_targets(list(names)),
        )
        publish(self.run_dir, status)

    def age(self, seconds: float) -> None:
        then = time.time() - seconds
        os.utime(status_file(self.run_dir), (then, then))

    def requests(self) -> list[Any]:
        return [taken.request for taken in take_requests(self.run_dir)]


@pytest.fixture
def supervisor(kiln_config: KilnConfig) -> PlayedSupervisor:
    return PlayedSupervisor(kiln_config.data_dir.run)


def test_the_services_the_supervisor_reports(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("postgres", "web", "worker-1")
    overview = data(api.get("/api/v1/admin/services/", headers=callers.admin))
    assert overview["supervised"] is True and overview["stale"] is False
    assert overview["message"] == f"supervised by kiln serve (pid {os.getpid()})"
    assert overview["supervisor"]["pid"] == os.getpid()
    assert overview["supervisor"]["version"] == "test"
    assert overview["status_age"] < STALE_AFTER
    services = overview["services"]
    assert [s["name"] for s in services] == ["postgres", "web", "worker-1"]
    for service in services:
        assert service["state"] == "running" and service["pid"] == os.getpid()
        assert service["uptime"] >= 12.0  # the report's uptime plus its age
        assert service["restarts"] == 1 and service["memory_bytes"] == 60_000_000
    assert overview["restart_targets"] == ["postgres", "web", "worker-1", "workers", "all"]


def test_a_stale_report_has_unknown_states_and_its_age(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("web", "worker-1")
    supervisor.age(STALE_AFTER + 20)
    overview = data(api.get("/api/v1/admin/services/", headers=callers.admin))
    assert overview["supervised"] is True and overview["stale"] is True
    assert overview["status_age"] >= STALE_AFTER + 20
    assert {service["state"] for service in overview["services"]} == {"unknown"}
    assert "has not reported for" in overview["message"]


def test_a_report_left_by_a_gone_supervisor_means_no_supervisor(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("web")
    document = json.loads(status_file(supervisor.run_dir).read_text())
    gone = subprocess.Popen(["true"])
    gone.wait()
    document["supervisor"]["pid"] = gone.pid
    status_file(supervisor.run_dir).write_text(json.dumps(document))
    overview = data(api.get("/api/v1/admin/services/", headers=callers.admin))
    assert overview["supervised"] is False
    assert f"(pid {gone.pid}) is not running" in overview["message"]
    response = api.post("/api/v1/admin/services/web/restart/", headers=callers.admin)
    assert response.status_code == 409, response.text


def test_a_restart_request_reaches_the_supervisor(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("postgres", "web", "worker-1", "worker-2")
    headers = callers.session_headers("root", admin=True)
    response = api.post("/api/v1/admin/services/worker-1/restart/", headers=headers)
    requested = data(response, 202)
    assert requested["service"] == "worker-1" and requested["restarts"] == ["worker-1"]
    assert response.json()["message"] == "restart of worker-1 requested"
    (request,) = supervisor.requests()
    assert (request.id, request.service, request.action) == (requested["id"], "worker-1", "restart")
    assert request.requested_by == "root"

    everything = data(api.post("/api/v1/admin/services/all/restart/", headers=headers), 202)
    assert everything["restarts"] == ["postgres", "web", "worker-1", "worker-2"]
    workers = data(api.post("/api/v1/admin/services/workers/restart/", headers=headers), 202)
    assert workers["restarts"] == ["worker-1", "worker-2"]
    assert [r.service for r in supervisor.requests()] == ["all", "workers"]


def test_an_unknown_service_is_refused_naming_the_allowed_ones(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("web", "worker-1")
    for name in ("mailer", "worker-2", "postgres", "WEB"):
        response = api.post(f"/api/v1/admin/services/{name}/restart/", headers=callers.admin)
        message = refusal(response, 400)
        assert message == f"no service '{name}' to restart; allowed: web, worker-1, workers, all"
        assert response.json()["code"] == "unknown_service"
    assert supervisor.requests() == []


# --- the queue ---------------------------------------------------------------------------------


def job(sessions: sessionmaker[Session], task: Any, args: dict[str, Any], status: str) -> int:
    """A job of ``task`` as a service defers it, then put in ``status`` (test set-up)."""
    with sessions.begin() as session:
        job_id = defer_job(session, task, args, lock=None)
        if status != "todo":
            session.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = CAST(:status AS "
                    "procrastinate_job_status) WHERE id = :id"
                ),
                {"status": status, "id": job_id},
            )
    return job_id


def build_job_of(sessions: sessionmaker[Session], build_id: int) -> int:
    with sessions() as session:
        return int(session.scalar(text(f"SELECT job_id FROM build WHERE id = {int(build_id)}")))


def test_queue_statistics_count_jobs_and_builds(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    first = builds.submit(TOOL, "one")
    builds.submit(TOOL, "two")
    job(db_sessions, DELETE_BUILD, {"build_id": 1}, "failed")
    stats = data(api.get("/api/v1/admin/queue/", headers=callers.admin))
    assert stats["jobs_by_status"] == {
        "todo": 2, "doing": 0, "succeeded": 0, "failed": 1, "cancelled": 0, "aborted": 0,
    }  # fmt: skip
    by_task = {entry["name"]: entry for entry in stats["jobs_by_task"]}
    assert by_task["kiln.build"]["total"] == 2 and by_task["kiln.build"]["by_status"]["todo"] == 2
    assert by_task["kiln.delete_build"]["by_status"]["failed"] == 1
    by_queue = {entry["name"]: entry["total"] for entry in stats["jobs_by_queue"]}
    assert by_queue == {"builds": 2, "upkeep": 1}
    assert stats["builds_by_status"] == {
        "QUEUED": 2, "BUILDING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELED": 0,
    }  # fmt: skip
    assert stats["oldest_queued_build"]["build_id"] == first
    assert stats["oldest_queued_build"]["age_seconds"] >= 0
    assert stats["oldest_todo_job_age"] >= 0
    assert stats["live_workers"] == 0


def test_an_empty_queue(api: Client, callers: Callers) -> None:
    stats = data(api.get("/api/v1/admin/queue/", headers=callers.admin))
    assert set(stats["jobs_by_status"].values()) == {0}
    assert stats["oldest_queued_build"] is None and stats["oldest_todo_job_age"] is None


def test_jobs_are_listed_newest_first_filtered_and_paged(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "one")
    failed = job(db_sessions, DELETE_BUILD, {"build_id": 7}, "failed")
    waiting = job(db_sessions, REFRESH_CHANNELS, {}, "todo")
    build_job = build_job_of(db_sessions, build_id)
    listing = api.get("/api/v1/admin/jobs/", headers=callers.admin).json()
    assert [item["id"] for item in listing["data"]] == [waiting, failed, build_job]
    assert listing["count"] == 3
    newest = listing["data"][0]
    assert newest["task"] == "kiln.refresh_channels" and newest["queue"] == "upkeep"
    assert newest["status"] == "todo" and newest["deferred_at"] and newest["ended_at"] is None
    oldest = listing["data"][2]
    assert oldest["task"] == "kiln.build" and oldest["args"]["build_id"] == build_id

    def ids(**params: Any) -> list[int]:
        response = api.get("/api/v1/admin/jobs/", params=params, headers=callers.admin)
        return [item["id"] for item in data(response)]

    assert ids(status="failed") == [failed]
    assert ids(task="kiln.build") == [build_job]
    assert ids(queue="upkeep") == [waiting, failed]
    assert ids(order="asc") == [build_job, failed, waiting]
    assert ids(size=2, page=2) == [build_job]
    assert ids(task="kiln.nothing") == []
    one = data(api.get(f"/api/v1/admin/jobs/{failed}/", headers=callers.admin))
    assert one["id"] == failed and one["args"] == {"build_id": 7} and one["status"] == "failed"


def test_bad_job_filters_and_ids_are_refused(api: Client, callers: Callers) -> None:
    response = api.get("/api/v1/admin/jobs/", params={"status": "done"}, headers=callers.admin)
    message = refusal(response, 400)
    assert message == (
        "status 'done' is not a job status; allowed: todo, doing, succeeded, failed, "
        "cancelled, aborted"
    )
    response = api.get("/api/v1/admin/jobs/", params={"task": "kiln\x00"}, headers=callers.admin)
    assert refusal(response, 400) == "task must not contain a NUL character"
    for job_id in ("424242", "0", "-3", str(2**63)):
        for method, suffix in (("GET", ""), ("POST", "retry/"), ("POST", "cancel/")):
            response = api.request(
                method, f"/api/v1/admin/jobs/{job_id}/{suffix}", headers=callers.admin
            )
            assert refusal(response, 404) == f"job {job_id} does not exist", (method, suffix)
    response = api.get("/api/v1/admin/jobs/abc/", headers=callers.admin)
    assert response.status_code == 400, response.text


def test_a_failed_job_is_retried(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    failed = job(db_sessions, DELETE_BUILD, {"build_id": 7}, "failed")
    response = api.post(f"/api/v1/admin/jobs/{failed}/retry/", headers=callers.admin)
    retried = data(response)
    assert retried["status"] == "todo" and retried["attempts"] == 1
    assert response.json()["message"] == f"job {failed} queued again"
    again = api.post(f"/api/v1/admin/jobs/{failed}/retry/", headers=callers.admin)
    assert refusal(again, 409) == (
        f"job {failed} is todo; only failed jobs can be retried (it is already waiting for a "
        "worker)"
    )


def test_a_waiting_job_is_canceled_and_finished_ones_are_not(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    waiting = job(db_sessions, REFRESH_CHANNELS, {}, "todo")
    canceled = data(api.post(f"/api/v1/admin/jobs/{waiting}/cancel/", headers=callers.admin))
    assert canceled["status"] == "cancelled" and canceled["ended_at"] is not None
    for status in ("failed", "succeeded", "cancelled"):
        finished = job(db_sessions, DELETE_BUILD, {"build_id": 7}, status)
        response = api.post(f"/api/v1/admin/jobs/{finished}/cancel/", headers=callers.admin)
        assert refusal(response, 409) == (
            f"job {finished} is {status}; only jobs waiting for a worker (todo) can be canceled"
        )
    succeeded = job(db_sessions, DELETE_BUILD, {"build_id": 8}, "succeeded")
    response = api.post(f"/api/v1/admin/jobs/{succeeded}/retry/", headers=callers.admin)
    assert (
        refusal(response, 409) == f"job {succeeded} is succeeded; only failed jobs can be retried"
    )


def test_a_builds_job_is_left_to_the_build_routes(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "one")
    build_job = build_job_of(db_sessions, build_id)
    cancel = api.post(f"/api/v1/admin/jobs/{build_job}/cancel/", headers=callers.admin)
    assert refusal(cancel, 409) == (
        f"job {build_job} builds build {build_id}: a build's job cannot be canceled directly; use "
        f"PUT /api/v1/build/{build_id}/cancel/ (cancel) so that the build and its job stay in "
        "step"
    )
    retry = api.post(f"/api/v1/admin/jobs/{build_job}/retry/", headers=callers.admin)
    assert f"PUT /api/v1/build/{build_id}/ (rebuild)" in refusal(retry, 409)
    listing = data(api.get(f"/api/v1/admin/jobs/{build_job}/", headers=callers.admin))
    assert listing["status"] == "todo"  # untouched


# --- configuration -----------------------------------------------------------------------------


def options_of(effective: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    (found,) = [entry for entry in effective["sections"] if entry["class"] == section]
    return {option["name"]: option for option in found["options"]}


def test_the_effective_configuration_with_sources_and_masked_secrets(
    api: Client, callers: Callers, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_ADDRESS", "127.0.0.9")
    effective = data(api.get("/api/v1/admin/config/", headers=callers.admin))
    assert effective["config_file"] == str(config_file)
    assert effective["config_file_exists"] and effective["config_file_writable"]
    worker = options_of(effective, "CondaStoreWorker")
    assert worker["concurrency"]["value"] == 2
    assert worker["concurrency"]["source"] == f"file {config_file}"
    assert worker["concurrency"]["help"].startswith("How many jobs")
    assert worker["watch_paths"]["source"] == "default"
    server = options_of(effective, "CondaStoreServer")
    assert server["secret_key"] == {**server["secret_key"], "value": "********", "secret": True}
    assert server["address"]["value"] == "127.0.0.9"
    assert server["address"]["source"] == "environment KILN_ADDRESS"
    restart = {entry["class"]: entry["restart"] for entry in effective["sections"]}
    assert restart["CondaStoreWorker"] == ["workers"] and restart["CondaStoreServer"] == ["web"]
    assert restart["Supervisor"] == ["kiln serve"]
    assert "a-secret-nobody-may-read" not in json.dumps(effective)


def change(api: Client, callers: Callers, **body: Any) -> Any:
    return api.patch("/api/v1/admin/config/", json=body, headers=callers.admin)


def test_a_change_replaces_the_options_line_and_keeps_the_comments(
    api: Client, callers: Callers, config_file: Path
) -> None:
    before = config_file.read_text()
    response = change(
        api, callers, **{"class": "CondaStoreWorker", "option": "concurrency", "value": 4}
    )
    result = data(response)
    assert result["action"] == "replaced" and result["written"] is True
    assert (result["value"], result["previous_value"]) == (4, 2)
    assert result["previous_source"] == f"file {config_file}" and result["changed"] is True
    assert result["line_text"] == "c.CondaStoreWorker.concurrency = 4  # keep it low"
    assert result["replaced"] == "c.CondaStoreWorker.concurrency = 2"
    assert result["restart"]["needed"] is True and result["restart"]["services"] == ["workers"]
    assert result["restart"]["targets"] == []  # no supervisor to ask
    assert "no supervisor runs this Kiln" in result["restart"]["message"]
    assert response.json()["message"] == (
        f"wrote c.CondaStoreWorker.concurrency ({config_file}: replaced line {result['line']})"
    )
    after = config_file.read_text()
    assert after == before.replace(
        "c.CondaStoreWorker.concurrency = 2  # keep it low",
        "c.CondaStoreWorker.concurrency = 4  # keep it low",
    )
    effective = data(api.get("/api/v1/admin/config/", headers=callers.admin))
    assert options_of(effective, "CondaStoreWorker")["concurrency"]["value"] == 4


def test_a_new_option_is_appended_with_a_comment(
    api: Client, callers: Callers, config_file: Path
) -> None:
    before = config_file.read_text()
    headers = callers.session_headers("root", admin=True)
    body = {"class": "Supervisor", "option": "drain_timeout", "value": 120}
    result = data(api.patch("/api/v1/admin/config/", json=body, headers=headers))
    assert result["action"] == "appended"
    assert result["restart"]["services"] == ["kiln serve"] and result["restart"]["targets"] == []
    after = config_file.read_text()
    assert after.startswith(before)
    added = after[len(before) :].splitlines()
    assert added[0] == "" and added[1].startswith("# set by root with the admin API, ")
    assert added[2] == "c.Supervisor.drain_timeout = 120"


def test_a_change_tells_the_supervisor_targets_to_restart(
    api: Client, callers: Callers, supervisor: PlayedSupervisor
) -> None:
    supervisor.publish("postgres", "web", "worker-1")
    body = {"class": "CondaStore", "option": "conda_max_solve_time", "value": 120}
    result = data(change(api, callers, **body))
    assert result["restart"]["services"] == ["web", "workers"]
    assert result["restart"]["targets"] == ["web", "workers"]
    unchanged = data(change(api, callers, **body))
    assert unchanged["changed"] is False and unchanged["restart"]["needed"] is False


def test_a_dry_run_checks_everything_and_writes_nothing(
    api: Client, callers: Callers, config_file: Path
) -> None:
    before = config_file.read_bytes()
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 8, "dry_run": True}
    response = change(api, callers, **body)
    result = data(response)
    assert result["dry_run"] is True and result["written"] is False
    assert result["line_text"] == "c.CondaStoreWorker.concurrency = 8  # keep it low"
    assert response.json()["message"].startswith("would write c.CondaStoreWorker.concurrency")
    assert config_file.read_bytes() == before
    assert [p.name for p in config_file.parent.glob(".kiln_config.py.*")] == []
    bad = change(api, callers, **{**body, "value": 0})
    assert bad.status_code == 400  # a dry run validates like the real thing


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"class": "CondaStoreWorkers", "option": "concurrency", "value": 4},
            "unknown configuration class 'CondaStoreWorkers' (did you mean CondaStoreWorker?); "
            "classes: CondaStore, Builder,",
        ),
        (
            {"class": "CondaStoreWorker", "option": "concurency", "value": 4},
            "unknown option CondaStoreWorker.concurency (did you mean concurrency?); options of "
            "CondaStoreWorker: concurrency, job_retention_days, log_level, watch_paths",
        ),
        (
            {"class": "CondaStoreWorker", "option": "concurrency", "value": "four"},
            "CondaStoreWorker.concurrency: expected an int, not the str 'four'",
        ),
        (
            {"class": "CondaStoreWorker", "option": "concurrency", "value": 0},
            "CondaStoreWorker.concurrency: should not be less than 1, but a value of 0 was "
            "specified",
        ),
        (
            {"class": "CondaStoreWorker", "option": "log_level", "value": "LOUD"},
            "'LOUD' is not a log level; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        (
            {"class": "CondaStore", "option": "celery_broker_url", "value": "redis://x"},
            "CondaStore.celery_broker_url is accepted but ignored by Kiln:",
        ),
        (
            {"class": "S3Storage", "option": "secret_key", "value": 12345},
            "S3Storage.secret_key: expected a unicode string, not the int ********",
        ),
    ],
)
def test_bad_changes_are_refused_naming_what_is_allowed(
    api: Client, callers: Callers, config_file: Path, body: dict[str, Any], expected: str
) -> None:
    before = config_file.read_bytes()
    response = change(api, callers, **body)
    message = refusal(response, 400)
    assert message.startswith(expected) or expected in message, message
    assert "12345" not in message
    assert config_file.read_bytes() == before


def test_malformed_change_bodies_are_refused(
    api: Client, callers: Callers, config_file: Path
) -> None:
    before = config_file.read_bytes()
    for body in (
        {"option": "concurrency", "value": 4},
        {"class": "CondaStoreWorker", "option": "concurrency", "value": 4, "dryrun": True},
        {"class": 3, "option": "concurrency", "value": 4},
    ):
        response = api.patch("/api/v1/admin/config/", json=body, headers=callers.admin)
        assert response.status_code == 400, (body, response.text)
    assert config_file.read_bytes() == before


def test_an_option_set_in_the_environment_is_not_edited_in_the_file(
    api: Client, callers: Callers, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_PORT", "6000")
    before = config_file.read_bytes()
    body = {"class": "CondaStoreServer", "option": "port", "value": 7000}
    assert refusal(change(api, callers, **body), 409) == (
        "CondaStoreServer.port is set by the environment variable KILN_PORT, which overrides "
        "the configuration file; change it where Kiln's environment is set (e.g. the systemd "
        "unit), or unset it"
    )
    assert config_file.read_bytes() == before


def test_an_option_set_inside_logic_is_not_edited(
    api: Client, callers: Callers, config_file: Path
) -> None:
    config_file.write_text(
        config_file.read_text()
        + "import os\nif os.cpu_count() > 64:\n    c.CondaStoreWorker.concurrency = 16\n"
    )
    before = config_file.read_bytes()
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 4}
    message = refusal(change(api, callers, **body), 409)
    assert "c.CondaStoreWorker.concurrency is set inside an if block" in message
    assert config_file.read_bytes() == before


def test_a_broken_file_is_reported_and_not_edited(
    api: Client, callers: Callers, config_file: Path
) -> None:
    config_file.write_text(config_file.read_text() + "c.CondaStoreWorker.concurrency = (\n")
    before = config_file.read_bytes()
    effective = data(api.get("/api/v1/admin/config/", headers=callers.admin))
    assert effective["sections"] == []
    assert [p["severity"] for p in effective["problems"]] == ["error"]
    assert "syntax error" in effective["problems"][0]["message"]
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 4}
    message = refusal(change(api, callers, **body), 409)
    assert message.startswith(f"the configuration file {config_file} does not load now")
    assert config_file.read_bytes() == before


@pytest.fixture
def read_only_config(tmp_path: Path, config_file: Path) -> Iterator[Path]:
    """The configuration file on a read-only file system (root may write anything else)."""
    with tmpfs(tmp_path / "ro", "size=1m") as mount:
        target = mount / "kiln_config.py"
        target.write_text(config_file.read_text())
        remounted = subprocess.run(
            ["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True
        )
        if remounted.returncode != 0:
            pytest.skip(f"cannot make a read-only file system here: {remounted.stderr}")
        config_file.unlink()
        config_file.symlink_to(target)
        yield target


def test_an_unwritable_file_is_refused(
    api: Client, callers: Callers, read_only_config: Path, config_file: Path
) -> None:
    effective = data(api.get("/api/v1/admin/config/", headers=callers.admin))
    assert effective["config_file_writable"] is False
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 4}
    assert refusal(change(api, callers, **body), 409) == (
        f"the configuration file {config_file} is not writable by the user Kiln runs as "
        f"(uid {os.getuid()}); change it by hand, or let Kiln's user write it"
    )
    assert "concurrency = 2" in read_only_config.read_text()


def test_a_configuration_file_behind_a_symbolic_link_stays_behind_it(
    api: Client, callers: Callers, config_file: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "etc" / "kiln_config.py"
    elsewhere.parent.mkdir()
    elsewhere.write_text(config_file.read_text())
    elsewhere.chmod(0o600)
    config_file.unlink()
    config_file.symlink_to(elsewhere)
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 5}
    assert data(change(api, callers, **body))["action"] == "replaced"
    assert config_file.is_symlink() and config_file.resolve() == elsewhere
    assert "c.CondaStoreWorker.concurrency = 5  # keep it low" in elsewhere.read_text()
    assert oct(elsewhere.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in elsewhere.parent.iterdir()] == ["kiln_config.py"]


def test_without_a_file_the_first_change_creates_one(
    api: Client, callers: Callers, config_file: Path
) -> None:
    config_file.unlink()
    body = {"class": "CondaStoreWorker", "option": "concurrency", "value": 3}
    result = data(change(api, callers, **body))
    assert result["action"] == "created" and result["previous_source"] == "default"
    assert config_file.read_text().endswith("\nc.CondaStoreWorker.concurrency = 3\n")
    assert oct(config_file.stat().st_mode & 0o777) == "0o640"


# --- storage --------------------------------------------------------------------------------


def test_the_stores_disk_is_answered_with_its_trend(
    api: Client, callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    now = datetime.now(UTC)
    with db_sessions.begin() as session:
        for minutes in range(0, 48 * 60, 10):  # two days, one sample every 10 minutes
            used = 1_000_000 + (48 * 60 - minutes) * 1_000  # growing towards now
            session.add(
                StorageSample(
                    host="kiln-1", path="/var/lib/kiln/store", sampled_on=now - timedelta(
                        minutes=minutes), disk_total=10_000_000, disk_used=used,
                    disk_free=10_000_000 - used, store_size=used // 2,
                )
            )  # fmt: skip

    answer = api.get("/api/v1/admin/storage/", params={"hours": 24}, headers=callers.admin)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["hours"] == 24
    [store] = data["stores"]
    assert (store["host"], store["path"]) == ("kiln-1", "/var/lib/kiln/store")
    assert store["used"] == 1_000_000 + 48 * 60 * 1_000  # the latest sample
    trend = store["trend"]
    assert 100 <= len(trend) <= 120  # 24 h in 12-minute buckets, not 288 samples
    times = [datetime.fromisoformat(point["at"]) for point in trend]
    assert times == sorted(times) and times[0] >= now - timedelta(hours=24, minutes=1)
    assert trend[0]["used"] < trend[-1]["used"]  # the growth shows

    for hours in (0, 24 * 91, "soon"):
        refused = api.get("/api/v1/admin/storage/", params={"hours": hours}, headers=callers.admin)
        assert refused.status_code == 400, (hours, refused.text)
        assert "hours" in refused.json()["message"]

"""Builds through the REST API: listing with filters, sorts and pages, reading one, rebuilding,
cancelling and deleting; what each role may do, and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.enums import BuildStatus
from appliance.db.models import Build
from appliance.services.environments import delete_environment
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import build_of, drain, submit

Client = TestClient[Litestar]

TOOL = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
DATA = "name: {name}\ndependencies:\n  - kiln-demo-data\n"
UNSATISFIABLE = "name: {name}\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n"


class Builds:
    """Builds made the way the API makes them (the service layer), and a worker to run them."""

    def __init__(
        self, sessions: sessionmaker[Session], context: ApiContext, database: TestDatabase
    ) -> None:
        self.sessions = sessions
        self.context = context
        self.database = database

    def submit(
        self, spec: str, name: str, namespace: str = "default", *, force: bool = False
    ) -> int:
        return submit(
            self.sessions,
            self.context.build_settings,
            spec.format(name=name),
            namespace=namespace,
            force=force,
        )

    def run_queued(self) -> None:
        drain(self.database, self.context.build_settings, self.context.storage)


@pytest.fixture
def builds(
    db_sessions: sessionmaker[Session], api_context: ApiContext, database: TestDatabase
) -> Builds:
    return Builds(db_sessions, api_context, database)


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def explanation(response: Any) -> str:
    """A 400's message and, for parameters Litestar checked, each parameter's problem."""
    body = response.json()
    problems = [f"{e['key']}: {e['message']}" for e in body.get("errors", [])]
    return "; ".join([body["message"], *problems])


def build_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Build)) or 0)


# --- reading ----------------------------------------------------------------------------------


def test_a_build_is_read_with_its_specification_and_artifacts(
    api: Client, callers: Callers, builds: Builds
) -> None:
    build_id = builds.submit(TOOL, "tool")
    builds.run_queued()
    response = api.get(
        f"/api/v1/build/{build_id}/", headers=callers.headers({"default/*": ["viewer"]})
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    data = body["data"]
    assert data["id"] == build_id and data["status"] == "COMPLETED"
    assert data["size"] > 0 and data["started_on"] and data["ended_on"]
    assert data["deleted_on"] is None
    assert data["specification"]["name"] == "tool"
    assert data["specification"]["spec"]["dependencies"] == ["kiln-demo-tool"]
    assert len(data["specification"]["sha256"]) == 64
    kinds = {artifact["artifact_type"] for artifact in data["build_artifacts"]}
    assert {"LOGS", "LOCKFILE", "YAML", "CONDA_PACK", "DIRECTORY"} <= kinds


def test_reading_a_build_needs_environment_read_on_its_environment(
    api: Client, callers: Callers, builds: Builds
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    url = f"/api/v1/build/{build_id}/"
    assert api.get(url, headers=callers.headers({"team/tool": ["viewer"]})).status_code == 200
    refused = api.get(url, headers=callers.headers({"team/other": ["viewer"]}))
    assert refused.status_code == 403
    assert "environment::read on team/tool" in refused.json()["message"]
    assert api.get(url).status_code == 401


def test_unknown_and_malformed_build_ids(api: Client, callers: Callers) -> None:
    admin = callers.admin
    for build_id in ("4242", "0", "-1", str(2**63), str(10**30)):
        response = api.get(f"/api/v1/build/{build_id}/", headers=admin)
        assert response.status_code == 404, (build_id, response.text)
        assert response.json()["message"] == f"build {build_id} does not exist"
    for build_id in ("abc", "1.5", "%00", "%20", "1;DROP"):
        for method, path in (
            ("GET", ""),
            ("PUT", ""),
            ("DELETE", ""),
            ("PUT", "cancel/"),
            ("GET", "packages/"),
        ):
            response = api.request(method, f"/api/v1/build/{build_id}/{path}", headers=admin)
            assert response.status_code == 400, (method, build_id, path, response.text)
            assert response.json()["errors"][0]["key"] == "build_id"


def test_a_build_of_a_deleted_environment_is_not_found(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "tool")
    with db_sessions.begin() as session:
        delete_environment(session, "default", "tool")
    for method, url in (
        ("GET", f"/api/v1/build/{build_id}/"),
        ("PUT", f"/api/v1/build/{build_id}/"),
        ("PUT", f"/api/v1/build/{build_id}/cancel/"),
        ("DELETE", f"/api/v1/build/{build_id}/"),
        ("GET", f"/api/v1/build/{build_id}/packages/"),
    ):
        response = api.request(method, url, headers=callers.admin)
        assert response.status_code == 404, (method, url, response.text)
    listed = api.get("/api/v1/build/", headers=callers.admin)
    assert ids(listed) == []


# --- listing ----------------------------------------------------------------------------------


def test_the_listing_shows_builds_of_environments_the_caller_can_see(
    api: Client, callers: Callers, builds: Builds
) -> None:
    own = [builds.submit(TOOL, "tool"), builds.submit(DATA, "data")]
    builds.submit(TOOL, "tool", namespace="secret")
    builds.submit(TOOL, "tool", namespace="default_x")  # '_' in a pattern is no wildcard
    viewer = callers.headers({"default/*": ["viewer"]})
    listed = api.get("/api/v1/build/", headers=viewer)
    assert ids(listed) == own
    body = listed.json()
    assert (body["page"], body["size"], body["count"]) == (1, 100, 2)
    item = body["data"][0]
    assert item["status"] == "QUEUED" and item["deleted_on"] is None
    assert item["specification"] is None and item["build_artifacts"] is None
    assert ids(
        api.get("/api/v1/build/", headers=callers.headers({"default/data": ["viewer"]}))
    ) == [own[1]]
    # Kiln's anonymous callers have no bindings: an empty list, not an error.
    assert ids(api.get("/api/v1/build/")) == []
    assert len(ids(api.get("/api/v1/build/", headers=callers.admin))) == 4


def test_builds_are_filtered_by_status_package_artifact_environment_and_names(
    api: Client, callers: Callers, builds: Builds
) -> None:
    tool = builds.submit(TOOL, "tool")
    data = builds.submit(DATA, "data")
    failed = builds.submit(UNSATISFIABLE, "legacy")
    other = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    queued = builds.submit(TOOL, "tool", force=True)
    admin = callers.admin

    def listed(query: str) -> list[int]:
        return ids(api.get(f"/api/v1/build/?{query}", headers=admin))

    assert listed("status=COMPLETED") == [tool, data, other]
    assert listed("status=failed") == [failed]
    assert listed("status=QUEUED") == [queued]
    assert listed("packages=kiln-demo-tool") == [tool, other]
    assert listed("packages=kiln-demo-tool&packages=kiln-demo-lib") == [tool, other]
    assert listed("packages=kiln-demo-data") == [tool, data, other]  # the tool needs the data
    assert listed("packages=kiln-demo-data&packages=kiln-demo-lib") == [tool, other]
    assert listed("packages=kiln-demo-tool&packages=kiln-demo-legacy") == []
    assert listed("artifact=CONDA_PACK") == [tool, data, other]
    assert listed("artifact=LOGS&namespace=team") == [other]
    assert listed("artifact=DOCKER_MANIFEST") == []  # a conda-store type Kiln never makes
    assert listed("name=tool") == [tool, other, queued]
    assert listed("name=tool&namespace=default") == [tool, queued]
    environment_id = build_of(builds.sessions, data).environment_id
    assert listed(f"environment_id={environment_id}") == [data]
    assert listed("name=%25") == [] and listed("namespace=default%27--") == []
    # What conda-store's client sends: no '/' after the path, one after the last value.
    assert ids(api.get("/api/v1/build?status=COMPLETED/", headers=admin)) == [tool, data, other]
    assert ids(
        api.get("/api/v1/build?artifact=LOCKFILE&packages=kiln-demo-lib/", headers=admin)
    ) == [tool, other]
    # Empty values filter nothing, as in conda-store (its UI sends them).
    assert listed("namespace=&name=&status=&artifact=&packages=") == listed("")


def test_builds_are_sorted_and_paged(api: Client, callers: Callers, builds: Builds) -> None:
    first = builds.submit(TOOL, "tool")
    second = builds.submit(DATA, "data")
    builds.run_queued()
    third = builds.submit(TOOL, "tool", force=True)
    admin = callers.admin
    assert ids(api.get("/api/v1/build/?order=desc", headers=admin)) == [third, second, first]
    by_end = ids(api.get("/api/v1/build/?sort_by=ended_on", headers=admin))
    assert by_end[-1] == third  # not ended: NULL sorts last
    assert set(by_end[:2]) == {first, second}
    assert ids(api.get("/api/v1/build/?sort_by=scheduled_on&order=desc", headers=admin)) == [
        third,
        second,
        first,
    ]
    page = api.get("/api/v1/build/?size=2&page=2", headers=admin).json()
    assert ([b["id"] for b in page["data"]], page["page"], page["size"], page["count"]) == (
        [third],
        2,
        2,
        3,
    )
    assert ids(api.get("/api/v1/build/?size=2&page=3", headers=admin)) == []
    assert api.get("/api/v1/build/?size=1000", headers=admin).json()["size"] == 100


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=DONE", "status 'DONE' is not a build status"),
        ("artifact=WHEEL", "artifact 'WHEEL' is not an artifact type"),
        ("sort_by=size", "sort_by: Invalid enum value 'size'"),
        ("order=up", "order: Invalid enum value 'up'"),
        ("page=0", "page: Expected `int` >= 1"),
        (f"page={2**70}", "page must be at most 2147483648"),
        ("size=0", "size: Expected `int` >= 1"),
        ("environment_id=abc", "environment_id: Expected `int | null`, got `str`"),
        ("environment_id=-3", "environment_id must be a positive integer"),
        (f"environment_id={2**63}", "environment_id must be a positive integer"),
        ("name=a%00b", "name must not contain a NUL character"),
        ("namespace=" + "x" * 300, "namespace is 300 characters long"),
        ("&".join(f"packages=p{i}" for i in range(40)), "at most 32 are allowed"),
    ],
)
def test_bad_listing_parameters_are_refused_with_what_is_allowed(
    api: Client, callers: Callers, query: str, message: str
) -> None:
    response = api.get(f"/api/v1/build/?{query}", headers=callers.admin)
    assert response.status_code == 400, response.text
    assert message in explanation(response)


# --- rebuild ----------------------------------------------------------------------------------


def test_an_editor_rebuilds_a_build_from_the_same_specification(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    editor = callers.headers({"team/*": ["editor"]})
    response = api.put(f"/api/v1/build/{build_id}/", headers=editor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "rebuild triggered"
    new_id = body["data"]["build_id"]
    assert new_id != build_id
    old, new = build_of(db_sessions, build_id), build_of(db_sessions, new_id)
    assert new.status == BuildStatus.QUEUED
    assert (new.specification_id, new.environment_id) == (old.specification_id, old.environment_id)
    assert new.build_key != old.build_key and new.job_id is not None
    builds.run_queued()
    assert build_of(db_sessions, new_id).status == BuildStatus.COMPLETED


def test_rebuilding_needs_environment_update(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    before = build_count(db_sessions)
    url = f"/api/v1/build/{build_id}/"
    refused = api.put(url, headers=callers.headers({"team/*": ["viewer"]}))
    assert refused.status_code == 403
    assert "environment::update" in refused.json()["message"]
    assert api.put(url).status_code == 401
    assert api.put("/api/v1/build/999999/", headers=callers.admin).status_code == 404
    assert build_count(db_sessions) == before


# --- cancel -----------------------------------------------------------------------------------


def test_an_editor_cancels_a_queued_build_and_a_finished_one_is_a_conflict(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    queued = builds.submit(TOOL, "tool", namespace="team")
    url = f"/api/v1/build/{queued}/cancel/"
    viewer = callers.headers({"team/*": ["viewer"]})
    refused = api.put(url, headers=viewer)
    assert refused.status_code == 403 and "build::cancel" in refused.json()["message"]
    assert api.put(url).status_code == 401
    assert build_of(db_sessions, queued).status == BuildStatus.QUEUED

    editor = callers.headers({"team/*": ["editor"]})
    canceled = api.put(url, headers=editor)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json() == {"status": "ok", "message": f"build {queued} canceled"}
    build = build_of(db_sessions, queued)
    assert build.status == BuildStatus.CANCELED
    with db_sessions() as session:
        job = session.execute(
            text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": build.job_id}
        ).scalar_one()
    assert job == "cancelled"

    again = api.put(url, headers=editor)
    assert again.status_code == 409
    assert again.json()["message"] == (
        f"build {queued} is CANCELED; only QUEUED or BUILDING builds can be canceled"
    )
    assert api.put("/api/v1/build/999999/cancel/", headers=callers.admin).status_code == 404


# --- delete -----------------------------------------------------------------------------------


def test_an_admin_deletes_a_finished_build_which_stays_listed_as_deleted(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    old = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    current = builds.submit(TOOL, "tool", namespace="team", force=True)
    builds.run_queued()
    url = f"/api/v1/build/{old}/"
    editor = callers.headers({"team/*": ["editor"]})
    refused = api.delete(url, headers=editor)
    assert refused.status_code == 403 and "build::delete" in refused.json()["message"]
    assert api.delete(url).status_code == 401

    admin = callers.headers({"team/*": ["admin"]})
    current_refused = api.delete(f"/api/v1/build/{current}/", headers=admin)
    assert current_refused.status_code == 409
    assert "is the current build of team/tool" in current_refused.json()["message"]

    deleted = api.delete(url, headers=admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"status": "ok", "message": f"build {old} deleted"}
    got = api.get(url, headers=admin).json()["data"]
    assert got["deleted_on"] is not None
    listed = {b["id"]: b for b in api.get("/api/v1/build/", headers=admin).json()["data"]}
    assert listed[old]["deleted_on"] is not None and listed[current]["deleted_on"] is None

    again = api.delete(url, headers=admin)
    assert again.status_code == 404
    assert again.json()["message"] == f"build {old} was already deleted"
    assert api.put(f"{url}cancel/", headers=admin).status_code == 409


def test_a_queued_build_must_be_canceled_before_it_is_deleted(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    queued = builds.submit(TOOL, "tool")
    response = api.delete(f"/api/v1/build/{queued}/", headers=callers.admin)
    assert response.status_code == 409
    assert response.json()["message"] == (
        f"build {queued} is QUEUED; cancel it first, then delete it"
    )
    assert build_of(db_sessions, queued).deleted_on is None

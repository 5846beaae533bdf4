"""Environments through the REST API: reading, the v1 and v2 listings with their filters and
pagination, switching the current build (with the worker moving the ``envs/`` link), changing
the description and deleting; what each role may do, and bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.builder.pipeline import Builder
from appliance.builder.solve import repodata_gateway
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment
from appliance.services import environments
from appliance.services.builds import delete_build
from appliance.services.transactions import Transactions
from appliance.worker.context import WorkerContext
from appliance.worker.environments import point_at_current_build
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import drain

Client = TestClient[Litestar]

TOOL = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
DATA = "name: {name}\ndependencies:\n  - kiln-demo-data\n"
UNSATISFIABLE = "name: {name}\ndependencies:\n  - kiln-demo-legacy\n  - kiln-demo-lib >=2\n"


def submit(
    api: Client, headers: Mapping[str, str], spec: str, namespace: str = "default", **extra: Any
) -> int:
    """Submit ``spec`` through the API; the queued build's id."""
    body = {"specification": spec, "namespace": namespace, **extra}
    response = api.post("/api/v1/specification/", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["build_id"])


def names(response_json: Mapping[str, Any]) -> list[str]:
    return [f"{item['namespace']['name']}/{item['name']}" for item in response_json["data"]]


def build_queued_work(api_context: ApiContext, database: TestDatabase) -> None:
    """Run a worker in this process until every queued job is done."""
    drain(database, api_context.build_settings, api_context.storage)


def link_target(api_context: ApiContext, namespace: str, name: str) -> str:
    link = api_context.build_settings.environment_link(namespace, name)
    return os.path.normpath(os.path.join(link.parent, os.readlink(link)))


def prefix_of(api_context: ApiContext, sessions: sessionmaker[Session], build_id: int) -> str:
    with sessions() as session:
        build = session.get_one(Build, build_id)
        environment = build.environment
        path = api_context.build_settings.build_prefix(
            environment.namespace.name, environment.name, build.build_key, build.key_version
        )
    return os.path.normpath(path)


# --- reading ----------------------------------------------------------------------------------


def test_an_environment_is_read_with_environment_read_and_refused_without(
    api: Client, callers: Callers
) -> None:
    submit(api, callers.admin, TOOL.format(name="web"), namespace="team")

    viewer = callers.headers({"team/*": ["viewer"]})
    got = api.get("/api/v1/environment/team/web/", headers=viewer)
    assert got.status_code == 200, got.text
    data = got.json()["data"]
    assert data == {
        "id": data["id"],
        "namespace": {"id": data["namespace"]["id"], "name": "team"},
        "name": "web",
        "current_build_id": None,  # its first build is still queued
        "description": None,
    }

    elsewhere = callers.headers({"other/*": ["admin"]})
    refused = api.get("/api/v1/environment/team/web/", headers=elsewhere)
    assert refused.status_code == 403
    assert "environment::read on team/web" in refused.json()["message"]
    assert api.get("/api/v1/environment/team/web/").status_code == 401
    one_env_only = callers.headers({"team/other": ["viewer"]})
    assert api.get("/api/v1/environment/team/web/", headers=one_env_only).status_code == 403

    missing = api.get("/api/v1/environment/team/nope/", headers=callers.admin)
    assert missing.status_code == 404
    assert missing.json()["message"] == "environment team/nope does not exist"


# --- the v1 listing ---------------------------------------------------------------------------


def test_the_v1_listing_is_deprecated_paginated_and_shows_only_visible_environments(
    api: Client, callers: Callers
) -> None:
    for namespace, name in [("team", "b"), ("team", "a"), ("lab", "c"), ("lab", "a")]:
        submit(api, callers.admin, TOOL.format(name=name), namespace=namespace)

    listed = api.get("/api/v1/environment/", headers=callers.admin)
    assert listed.status_code == 200, listed.text
    assert listed.headers["deprecation"] == "true"
    body = listed.json()
    assert (body["status"], body["page"], body["size"], body["count"]) == ("ok", 1, 100, 4)
    assert names(body) == ["lab/a", "lab/c", "team/a", "team/b"]  # namespace, then name
    assert "current_build" not in body["data"][0]

    by_name = api.get("/api/v1/environment/?sort_by=name&order=desc", headers=callers.admin)
    assert [item["name"] for item in by_name.json()["data"]] == ["c", "b", "a", "a"]

    second = api.get("/api/v1/environment/?size=3&page=2", headers=callers.admin).json()
    assert (second["page"], second["size"], second["count"]) == (2, 3, 4)
    assert names(second) == ["team/b"]
    capped = api.get("/api/v1/environment/?size=100000", headers=callers.admin).json()
    assert capped["size"] == 100

    viewer = callers.headers({"team/*": ["viewer"], "lab/c": ["viewer"]})
    assert names(api.get("/api/v1/environment/", headers=viewer).json()) == [
        "lab/c", "team/a", "team/b",
    ]  # fmt: skip
    nobody = callers.headers({"elsewhere/*": ["admin"]})
    assert api.get("/api/v1/environment/", headers=nobody).json()["count"] == 0
    # Kiln's default: anonymous callers hold no role, so they see nothing (and are not refused).
    assert api.get("/api/v1/environment/").json()["count"] == 0

    assert api.delete("/api/v1/environment/team/a/", headers=callers.admin).status_code == 200
    assert names(api.get("/api/v1/environment/", headers=viewer).json()) == ["lab/c", "team/b"]


def test_the_v1_listing_filters_by_search_namespace_and_name(api: Client, callers: Callers) -> None:
    for namespace, name in [("science", "x_y"), ("science", "xzy"), ("Ops", "Web-Tools")]:
        submit(api, callers.admin, TOOL.format(name=name), namespace=namespace)

    def found(query: str) -> list[str]:
        response = api.get(f"/api/v1/environment/?{query}", headers=callers.admin)
        assert response.status_code == 200, response.text
        return names(response.json())

    assert found("search=web-tool") == ["Ops/Web-Tools"]  # case-insensitive, in the name
    assert found("search=SCIENCE") == ["science/x_y", "science/xzy"]  # or in the namespace
    assert found("search=x_y") == ["science/x_y"]  # '_' is a literal, not a wildcard
    assert found("search=%25_") == []  # '%_' would match everything in a LIKE pattern
    assert found("search=" + "'; DROP TABLE environment; --") == []
    assert found("search=" + "x' OR '1'='1") == []
    assert found("namespace=science&name=xzy") == ["science/xzy"]
    assert found("namespace=Ops") == ["Ops/Web-Tools"]
    assert found("namespace=ops") == []  # names are exact
    assert found("search=") == ["Ops/Web-Tools", "science/x_y", "science/xzy"]
    assert len(found("")) == 3  # the injection attempts changed nothing


def test_the_v1_listing_filters_on_the_current_build_status_packages_and_artifacts(
    api: Client, api_context: ApiContext, database: TestDatabase, callers: Callers
) -> None:
    submit(api, callers.admin, TOOL.format(name="tool"))
    submit(api, callers.admin, DATA.format(name="data"))
    submit(api, callers.admin, UNSATISFIABLE.format(name="broken"))
    build_queued_work(api_context, database)
    submit(api, callers.admin, TOOL.format(name="waiting"))  # queued: no current build yet

    def found(query: str) -> list[str]:
        response = api.get(f"/api/v1/environment/?{query}", headers=callers.admin)
        assert response.status_code == 200, response.text
        return [item["name"] for item in response.json()["data"]]

    assert found("") == ["broken", "data", "tool", "waiting"]
    assert found("status=COMPLETED") == ["data", "tool"]
    assert found("status=completed") == ["data", "tool"]
    assert found("status=QUEUED") == []  # a queued build is not current until it completes
    assert found("packages=kiln-demo-data") == ["data", "tool"]
    assert found("packages=kiln-demo-tool&packages=kiln-demo-lib") == ["tool"]  # all of them
    assert found("packages=kiln-demo-tool&packages=kiln-demo-gpu") == []
    assert found("packages=kiln-demo") == []  # exact names
    assert found("artifact=CONDA_PACK") == ["data", "tool"]
    assert found("artifact=LOCKFILE&packages=kiln-demo-lib") == ["tool"]
    assert found("artifact=DOCKER_MANIFEST") == []  # conda-store's, never produced by Kiln
    # What conda-store's client sends: no slash after the path, one after the last value.
    client_url = "/api/v1/environment?status=COMPLETED&packages=kiln-demo-tool/"
    sent = api.get(client_url, headers=callers.admin)
    assert sent.status_code == 200, sent.text
    assert [item["name"] for item in sent.json()["data"]] == ["tool"]

    bad_status = api.get("/api/v1/environment/?status=DONE", headers=callers.admin)
    assert bad_status.status_code == 400
    assert "status 'DONE' is not a build status; allowed: QUEUED" in bad_status.json()["message"]
    bad_artifact = api.get("/api/v1/environment/?artifact=WHEEL", headers=callers.admin)
    assert bad_artifact.status_code == 400
    assert "CONDA_PACK" in bad_artifact.json()["message"]
    too_many = "&".join(f"packages=p{n}" for n in range(40))
    assert api.get(f"/api/v1/environment/?{too_many}", headers=callers.admin).status_code == 400


def test_the_jwt_parameter_narrows_the_listing_to_what_that_token_can_see(
    api: Client, api_context: ApiContext, callers: Callers
) -> None:
    for namespace in ("team", "lab"):
        submit(api, callers.admin, TOOL.format(name="env"), namespace=namespace)
    user_token = callers.token({"team/*": ["viewer"]})
    scoped = api.get(f"/api/v1/environment/?jwt={user_token}", headers=callers.admin)
    assert scoped.status_code == 200, scoped.text
    assert names(scoped.json()) == ["team/env"]
    # It narrows, never widens: the caller's own visibility still applies.
    lab_only = callers.headers({"lab/*": ["viewer"]})
    assert api.get(f"/api/v1/environment/?jwt={user_token}", headers=lab_only).json()["count"] == 0
    v2 = api.get(f"/api/v2/environment/?jwt={user_token}", headers=callers.admin)
    assert names(v2.json()) == ["team/env"]

    for bad in ("not-a-token", callers.forged({"*/*": ["admin"]})):
        refused = api.get(f"/api/v1/environment/?jwt={bad}", headers=callers.admin)
        assert refused.status_code == 400, refused.text
        assert refused.json()["message"].startswith("jwt: the token is not valid")
    expired = callers.token({"*/*": ["viewer"]}, lifetime=-timedelta(days=1))
    refused = api.get(f"/api/v1/environment/?jwt={expired}", headers=callers.admin)
    assert refused.status_code == 400
    assert "expired" in refused.json()["message"]


def test_bad_v1_listing_parameters_are_refused_with_what_is_allowed(
    api: Client, callers: Callers
) -> None:
    for query, expected in [
        ("sort_by=size", "sort_by size is not a sort key here; allowed: namespace, name"),
        ("order=sideways", "order must be 'asc' or 'desc'"),
        ("page=0", "page must be 1 or more"),
        ("size=-1", "size must be 1 or more"),
        ("page=many", ""),
    ]:
        response = api.get(f"/api/v1/environment/?{query}", headers=callers.admin)
        assert response.status_code == 400, (query, response.text)
        assert expected in response.json()["message"], query


# --- the v2 listing ---------------------------------------------------------------------------


def walk(api: Client, headers: Mapping[str, str], query: str) -> list[dict[str, Any]]:
    """Every slice of a v2 listing, following the cursors."""
    slices = []
    cursor: str | None = None
    while True:
        url = f"/api/v2/environment/?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        slices.append(body)
        cursor = body["cursor"]
        if cursor is None:
            return slices
        assert len(slices) < 50, "the cursor walk does not end"


def test_the_v2_listing_walks_25_environments_ten_at_a_time_with_a_cursor(
    api: Client, callers: Callers
) -> None:
    expected = []
    for n in range(25):
        namespace = ("alpha", "beta", "gamma")[n % 3]
        submit(api, callers.admin, TOOL.format(name=f"env{n:02d}"), namespace=namespace)
        expected.append((namespace, f"env{n:02d}"))

    slices = walk(api, callers.admin, "limit=10")
    assert [len(s["data"]) for s in slices] == [10, 10, 5]
    assert all(s["count"] == 25 and s["status"] == "ok" for s in slices)
    assert slices[-1]["cursor"] is None
    walked = [(i["namespace"]["name"], i["name"]) for s in slices for i in s["data"]]
    assert walked == sorted(expected)

    backwards = walk(api, callers.admin, "limit=10&order=desc")
    walked = [(i["namespace"]["name"], i["name"]) for s in backwards for i in s["data"]]
    assert walked == sorted(expected, reverse=True)

    by_name = walk(api, callers.admin, "limit=7&sort_by=name")
    assert [i["name"] for s in by_name for i in s["data"]] == sorted(n for _, n in expected)
    comma = walk(api, callers.admin, "limit=10&sort_by=name,namespace")
    repeated = walk(api, callers.admin, "limit=10&sort_by=name&sort_by=namespace")
    assert [s["data"] for s in comma] == [s["data"] for s in repeated]

    filtered = walk(api, callers.admin, "limit=4&namespace=beta")
    assert [len(s["data"]) for s in filtered] == [4, 4]
    assert filtered[0]["count"] == 8

    default = api.get("/api/v2/environment/", headers=callers.admin).json()
    assert (len(default["data"]), default["cursor"], default["count"]) == (25, None, 25)


def test_a_v2_cursor_stays_valid_while_environments_come_and_go(
    api: Client, callers: Callers
) -> None:
    for n in range(6):
        submit(api, callers.admin, TOOL.format(name=f"env{n}"))
    first = api.get("/api/v2/environment/?limit=3", headers=callers.admin).json()
    assert [i["name"] for i in first["data"]] == ["env0", "env1", "env2"]
    api.delete("/api/v1/environment/default/env1/", headers=callers.admin)
    api.delete("/api/v1/environment/default/env3/", headers=callers.admin)
    submit(api, callers.admin, TOOL.format(name="env0a"))  # sorts before the cursor
    submit(api, callers.admin, TOOL.format(name="env9"))
    rest = api.get(f"/api/v2/environment/?limit=3&cursor={first['cursor']}", headers=callers.admin)
    assert [i["name"] for i in rest.json()["data"]] == ["env4", "env5", "env9"]
    assert rest.json()["count"] == 6
    # Past the end (the last environments were deleted): an empty, final slice.
    beyond = _cursor({"last_id": 10**9, "last_value": {"namespace": "zzz", "name": "zzz"}})
    after = api.get(f"/api/v2/environment/?cursor={beyond}", headers=callers.admin).json()
    assert (after["data"], after["cursor"], after["count"]) == ([], None, 6)


@pytest.mark.parametrize("kiln_config_lines", [["c.CondaStoreServer.max_page_size = 4"]])
def test_the_v2_limit_and_v1_size_never_exceed_a_small_max_page_size(
    api: Client, callers: Callers
) -> None:
    for n in range(6):
        submit(api, callers.admin, TOOL.format(name=f"env{n}"))
    v2 = api.get("/api/v2/environment/?limit=50", headers=callers.admin).json()
    assert (len(v2["data"]), v2["count"]) == (4, 6)
    assert v2["cursor"] is not None
    v1 = api.get("/api/v1/environment/?size=50", headers=callers.admin).json()
    assert (len(v1["data"]), v1["size"], v1["count"]) == (4, 4, 6)


def _cursor(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def test_bad_v2_parameters_and_malformed_cursors_are_refused(api: Client, callers: Callers) -> None:
    for n in range(3):
        submit(api, callers.admin, TOOL.format(name=f"env{n}"))
    by_name = api.get("/api/v2/environment/?limit=1&sort_by=name", headers=callers.admin).json()
    for query, expected in [
        ("order=up", "order must be 'asc' or 'desc', not 'up'"),
        ("sort_by=size", "sort_by size is not a sort key here; allowed: namespace, name"),
        ("sort_by=name,size", "sort_by size is not a sort key"),
        ("limit=0", "limit must be 1 or more"),
        ("cursor=!!!not-base64!!!", "cursor is malformed"),
        ("cursor=" + _cursor([1, 2]), "cursor is malformed"),
        ("cursor=" + _cursor({"last_id": "1", "last_value": {}}), "cursor is malformed"),
        ("cursor=" + _cursor({"last_id": 1, "last_value": {"name": 5, "namespace": "x"}}),
         "cursor is malformed"),
        ("cursor=" + base64.urlsafe_b64encode(b"\xff\xfe").decode(), "cursor is malformed"),
        # A cursor made for another sort order.
        (f"cursor={by_name['cursor']}", "cursor was made for sort_by name"),
    ]:  # fmt: skip
        response = api.get(f"/api/v2/environment/?{query}", headers=callers.admin)
        assert response.status_code == 400, (query, response.text)
        assert expected in response.json()["message"], (query, response.json())

    # conda-store's own cursor encoding (standard base64) is read too.
    env0 = by_name["data"][0]
    document = {"last_id": env0["id"], "last_value": {"namespace": "default", "name": "env0"}}
    standard = base64.b64encode(json.dumps(document).encode()).decode()
    after = api.get("/api/v2/environment/", params={"cursor": standard}, headers=callers.admin)
    assert [i["name"] for i in after.json()["data"]] == ["env1", "env2"]


# --- switching the current build, the description ---------------------------------------------


def test_switching_the_current_build_moves_the_envs_link_through_the_worker(
    api: Client,
    api_context: ApiContext,
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    callers: Callers,
) -> None:
    first = submit(api, callers.admin, TOOL.format(name="demo"), namespace="team")
    build_queued_work(api_context, database)
    second = submit(api, callers.admin, DATA.format(name="demo"), namespace="team")
    failed = submit(api, callers.admin, UNSATISFIABLE.format(name="demo"), namespace="team")
    other = submit(api, callers.admin, DATA.format(name="other"), namespace="team")
    build_queued_work(api_context, database)
    assert link_target(api_context, "team", "demo") == prefix_of(api_context, db_sessions, second)
    url = "/api/v1/environment/team/demo/"
    assert api.get(url, headers=callers.admin).json()["data"]["current_build_id"] == second

    viewer = callers.headers({"team/*": ["viewer"]})
    refused = api.put(url, json={"build_id": first}, headers=viewer)
    assert refused.status_code == 403
    assert "environment::update on team/demo" in refused.json()["message"]

    developer = callers.headers({"team/*": ["developer"]})
    switched = api.put(url, json={"build_id": first}, headers=developer)
    assert switched.status_code == 200, switched.text
    assert switched.json()["data"]["current_build_id"] == first
    with db_sessions() as session:
        jobs = session.execute(
            text("SELECT args FROM procrastinate_jobs WHERE task_name = 'kiln.update_environment'")
        ).scalars()
        environment_id = session.scalars(
            select(Environment.id).where(Environment.name == "demo")
        ).one()
        assert list(jobs) == [{"environment_id": environment_id}]
    # The row changed at once; the link follows when the worker runs the job.
    assert link_target(api_context, "team", "demo") == prefix_of(api_context, db_sessions, second)
    build_queued_work(api_context, database)
    assert link_target(api_context, "team", "demo") == prefix_of(api_context, db_sessions, first)
    assert api.get("/api/v1/environment/?status=COMPLETED&packages=kiln-demo-tool",
                   headers=callers.admin).json()["count"] == 1  # fmt: skip

    with db_sessions.begin() as session:
        delete_build(session, second)
    for build_id, expected in [
        (other, f"build {other} is not a build of team/demo"),
        (999999, "build 999999 is not a build of team/demo"),
        (failed, f"build {failed} is FAILED; only a COMPLETED build can become the current"),
        (second, f"build {second} was deleted"),
    ]:
        response = api.put(url, json={"build_id": build_id}, headers=developer)
        assert response.status_code == 400, response.text
        assert expected in response.json()["message"]
    assert api.get(url, headers=callers.admin).json()["data"]["current_build_id"] == first


@dataclass(frozen=True)
class Linked:
    """``default/demo`` built once, and a worker's context to move its link with."""

    build: int
    environment_id: int
    worker: WorkerContext


@pytest.fixture
def linked(
    api: Client,
    api_context: ApiContext,
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    db_engine: Engine,
    callers: Callers,
) -> Linked:
    build = submit(api, callers.admin, TOOL.format(name="demo"))
    build_queued_work(api_context, database)
    with db_sessions() as session:
        environment_id = session.get_one(Build, build).environment_id
    settings = api_context.build_settings
    worker = WorkerContext(
        transactions=Transactions(db_engine),
        builder=Builder(settings, api_context.storage, repodata_gateway(settings.repodata_cache)),
        name="test:1",
        platform="linux-64",
    )
    return Linked(build, environment_id, worker)


def test_the_update_job_leaves_the_link_alone_when_there_is_nothing_to_point_at(
    api: Client,
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
    callers: Callers,
    linked: Linked,
) -> None:
    build, environment_id, worker = linked.build, linked.environment_id, linked.worker
    settings = api_context.build_settings
    link = settings.environment_link("default", "demo")
    prefix = prefix_of(api_context, db_sessions, build)

    link.unlink()
    asyncio.run(point_at_current_build(worker, environment_id))  # called as the job would
    assert link_target(api_context, "default", "demo") == prefix  # put back

    api.delete("/api/v1/environment/default/demo/", headers=callers.admin)
    os.replace(link, Path(str(link) + ".moved"))
    asyncio.run(point_at_current_build(worker, environment_id))
    assert not os.path.lexists(link)  # a deleted environment gets no link back
    asyncio.run(point_at_current_build(worker, 424242))  # nor does one that never existed


def test_moving_the_link_waits_for_another_move_of_the_same_environment(
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
    db_engine: Engine,
    linked: Linked,
) -> None:
    """Whoever moves an environment's link reads its current build and moves the link under
    the environment's link lock: a switch job and a build that completes cannot interleave."""
    build, environment_id, worker = linked.build, linked.environment_id, linked.worker
    settings = api_context.build_settings
    link = settings.environment_link("default", "demo")
    link.unlink()

    with db_engine.connect() as holder:  # another mover, in the middle of its move
        holder.execute(select(func.pg_advisory_lock(environments.LINK_LOCK, environment_id)))
        mover = threading.Thread(
            target=lambda: asyncio.run(point_at_current_build(worker, environment_id))
        )
        mover.start()
        mover.join(timeout=1.0)
        assert mover.is_alive(), "the link was moved while another move held the lock"
        assert not os.path.lexists(link)
        holder.execute(select(func.pg_advisory_unlock(environments.LINK_LOCK, environment_id)))
        mover.join(timeout=30)
    assert not mover.is_alive()
    assert link_target(api_context, "default", "demo") == prefix_of(api_context, db_sessions, build)


def test_the_description_is_changed_with_environment_update(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    submit(api, callers.admin, TOOL.format(name="web"), namespace="team")
    url = "/api/v1/environment/team/web/"
    developer = callers.headers({"team/*": ["developer"]})
    changed = api.put(url, json={"description": "Our web stack"}, headers=developer)
    assert changed.status_code == 200, changed.text
    assert api.get(url, headers=developer).json()["data"]["description"] == "Our web stack"

    viewer = callers.headers({"team/*": ["viewer"]})
    assert api.put(url, json={"description": "x"}, headers=viewer).status_code == 403
    assert api.put(url, json={"description": "x"}).status_code == 401
    for body in ({"description": 5}, {"build_id": "latest"}, [1, 2]):
        response = api.put(url, json=body, headers=developer)
        assert response.status_code == 400, (body, response.text)
    too_long = api.put(url, json={"description": "x" * 20000}, headers=developer)
    assert too_long.status_code == 400
    assert "at most 16384" in too_long.json()["message"]
    not_json = api.put(
        url, content=b"{nope", headers={**developer, "content-type": "application/json"}
    )
    assert not_json.status_code == 400
    missing = api.put("/api/v1/environment/team/nope/", json={"description": "x"},
                      headers=callers.admin)  # fmt: skip
    assert missing.status_code == 404
    assert api.get(url, headers=developer).json()["data"]["description"] == "Our web stack"
    with db_sessions() as session:
        jobs = session.execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = :task"),
            {"task": "kiln.update_environment"},
        ).scalar_one()
    assert jobs == 0  # a description change moves no link


# --- deleting ---------------------------------------------------------------------------------


def test_deleting_an_environment_needs_environment_delete(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    submit(api, callers.admin, TOOL.format(name="web"), namespace="team")
    url = "/api/v1/environment/team/web/"
    developer = callers.headers({"team/*": ["developer"]})
    refused = api.delete(url, headers=developer)
    assert refused.status_code == 403
    assert "environment::delete" in refused.json()["message"]
    assert api.delete(url).status_code == 401

    admin_of_team = callers.headers({"team/*": ["admin"]})
    deleted = api.delete(url, headers=admin_of_team)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"status": "ok", "message": "environment team/web deleted"}
    assert api.get(url, headers=admin_of_team).status_code == 404
    assert api.delete(url, headers=admin_of_team).status_code == 404
    with db_sessions() as session:
        build = session.scalars(select(Build)).one()
        assert build.status == BuildStatus.CANCELED and build.deleted_on is not None
        live = session.scalar(
            select(func.count()).select_from(Environment).where(Environment.active())
        )
    assert live == 0
    # The name is free again at once.
    submit(api, callers.admin, TOOL.format(name="web"), namespace="team")
    assert api.get(url, headers=admin_of_team).status_code == 200


def test_odd_names_in_environment_paths_are_not_found_or_refused(
    api: Client, callers: Callers
) -> None:
    submit(api, callers.admin, TOOL.format(name="web"), namespace="team")
    for path in ("team/web%00", "team/%27%3B--", "team%20x/web", "-team/web"):
        for method in ("GET", "PUT", "DELETE"):
            response = api.request(
                method, f"/api/v1/environment/{path}/", json={}, headers=callers.admin
            )
            assert response.status_code == 400, (path, method, response.text)
            assert "names use letters, digits" in response.json()["message"]
    for path in ("team/..%2Fweb", "..%2F..%2Fetc/passwd"):  # routes no handler serves
        assert api.get(f"/api/v1/environment/{path}/", headers=callers.admin).status_code == 404
    assert api.get("/api/v1/environment/", headers=callers.admin).json()["count"] == 1

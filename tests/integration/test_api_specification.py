"""Specifications through the REST API: submitting one creates or updates an environment (and
its namespace) with the right permissions; solving one answers conda-store's ``{"solve": ...}``
without building; bad input gets a 400 that says where and changes nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Build, BuildArtifact, CondaChannel, Environment, Namespace
from appliance.schemas.channels import normalize_channel
from appliance.schemas.specification import EnvironmentSpec
from appliance.services.specifications import Solver, SolverBusy
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.worker import drain

Client = TestClient[Litestar]

TOOL = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
URL = "/api/v1/specification/"


def post(api: Client, body: object, headers: Mapping[str, str]) -> Any:
    return api.post(URL, json=body, headers=headers)


def counts(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """Namespaces, environments, builds and queued jobs in the database."""
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Namespace)) or 0,
            session.scalar(select(func.count()).select_from(Environment)) or 0,
            session.scalar(select(func.count()).select_from(Build)) or 0,
            session.scalar(text("SELECT count(*) FROM procrastinate_jobs")) or 0,
        )


# --- submitting -------------------------------------------------------------------------------


def test_a_developer_submits_to_an_existing_namespace_and_a_build_is_queued(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    developer = callers.headers({"team/*": ["developer"]})
    response = post(api, {"namespace": "team", "specification": TOOL.format(name="web")}, developer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and set(body["data"]) == {"build_id"}
    with db_sessions() as session:
        build = session.get_one(Build, body["data"]["build_id"])
        assert build.status == BuildStatus.QUEUED
        assert (build.environment.namespace.name, build.environment.name) == ("team", "web")
        assert build.specification.spec["dependencies"] == ["kiln-demo-tool"]

    # A new specification for the same environment is a new build of it.
    updated = post(
        api,
        {"namespace": "team", "specification": "name: web\ndependencies: [kiln-demo-data]\n"},
        developer,
    )
    assert updated.status_code == 200
    assert counts(db_sessions)[1:3] == (1, 2)


def test_submitting_is_refused_by_role_and_a_new_namespace_needs_namespace_create(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    api.post("/api/v1/namespace/team/", headers=callers.admin)
    spec = {"namespace": "team", "specification": TOOL.format(name="web")}
    before = counts(db_sessions)

    anonymous = post(api, spec, {})
    assert anonymous.status_code == 401
    viewer = post(api, spec, callers.headers({"team/*": ["viewer"]}))
    assert viewer.status_code == 403
    assert "environment::create on team/web" in viewer.json()["message"]
    one_env = post(api, spec, callers.headers({"team/other": ["developer"]}))
    assert one_env.status_code == 403

    # An editor cannot create the namespace it would need (conda-store's rule).
    fresh = {"namespace": "fresh", "specification": TOOL.format(name="web")}
    refused = post(api, fresh, callers.headers({"fresh/*": ["developer"]}))
    assert refused.status_code == 403
    assert "namespace::create on fresh" in refused.json()["message"]
    assert counts(db_sessions) == before  # nothing was created

    created = post(api, fresh, callers.headers({"fresh/*": ["admin"]}))
    assert created.status_code == 200, created.text
    got = api.get("/api/v1/namespace/fresh/", headers=callers.admin)
    assert got.status_code == 200


def test_without_a_namespace_the_callers_primary_namespace_is_used(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    alice = callers.session_headers("alice")  # admin of alice/* by being alice
    response = post(api, {"specification": TOOL.format(name="mine")}, alice)
    assert response.status_code == 200, response.text
    got = api.get("/api/v1/environment/alice/mine/", headers=alice)
    assert got.status_code == 200, got.text

    token_user = callers.headers({"ops/*": ["developer"]}, primary_namespace="ops")
    api.post("/api/v1/namespace/ops/", headers=callers.admin)
    assert post(api, {"specification": TOOL.format(name="svc")}, token_user).status_code == 200
    assert api.get("/api/v1/environment/ops/svc/", headers=callers.admin).status_code == 200


def test_the_same_specification_is_not_built_twice_unless_forced(
    api: Client, api_context: ApiContext, database: TestDatabase, callers: Callers
) -> None:
    body = {"specification": TOOL.format(name="web")}
    first = post(api, body, callers.admin).json()["data"]["build_id"]
    drain(database, api_context.build_settings, api_context.storage)
    again = post(api, body, callers.admin).json()["data"]["build_id"]
    assert again == first
    forced = post(api, {**body, "force": True}, callers.admin).json()["data"]["build_id"]
    assert forced != first


def test_a_lockfile_is_submitted_with_its_environment_name_and_description(
    api: Client,
    api_context: ApiContext,
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    callers: Callers,
) -> None:
    built = post(api, {"specification": TOOL.format(name="web")}, callers.admin)
    drain(database, api_context.build_settings, api_context.storage)
    with db_sessions() as session:
        key = session.scalars(
            select(BuildArtifact.key).where(
                BuildArtifact.build_id == built.json()["data"]["build_id"],
                BuildArtifact.artifact_type == BuildArtifactType.LOCKFILE,
            )
        ).one()
    lockfile = api_context.storage.get(key).decode()

    body = {
        "specification": lockfile,
        "is_lockfile": True,
        "environment_name": "pinned",
        "environment_description": "exactly what web has",
    }
    response = post(api, body, callers.admin)
    assert response.status_code == 200, response.text
    got = api.get("/api/v1/environment/default/pinned/", headers=callers.admin).json()["data"]
    assert got["description"] == "exactly what web has"
    drain(database, api_context.build_settings, api_context.storage)
    with db_sessions() as session:
        build = session.get_one(Build, response.json()["data"]["build_id"])
        assert build.status == BuildStatus.COMPLETED, build.status_info
        assert build.specification.is_lockfile

    nameless = post(api, {"specification": lockfile, "is_lockfile": True}, callers.admin)
    assert nameless.status_code == 400
    assert nameless.json()["field"] == "name"


def test_a_specification_may_also_be_sent_as_a_json_object_or_json_text(
    api: Client, callers: Callers
) -> None:
    document = {"name": "objects", "channels": [], "dependencies": ["kiln-demo-data"]}
    assert post(api, {"specification": document}, callers.admin).status_code == 200
    as_text = {"specification": json.dumps({**document, "name": "text"})}
    assert post(api, as_text, callers.admin).status_code == 200
    listed = api.get("/api/v1/environment/", headers=callers.admin).json()
    assert [item["name"] for item in listed["data"]] == ["objects", "text"]


def test_bad_specifications_are_refused_with_where_and_change_nothing(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    api.post("/api/v1/namespace/default/", headers=callers.admin)
    before = counts(db_sessions)
    oversized = "name: big\ndependencies:\n" + "".join(
        f"  - kiln-demo-pkg{n}  # {'x' * 60}\n" for n in range(1200)
    )
    cases: list[tuple[object, str, dict[str, object]]] = [
        ({"specification": "name: x\ndependencies: [a, b\n"}, "not valid YAML", {"line": 3}),
        ({"specification": "name: web\ndependencies:\n\t- numpy\n"}, "not valid YAML", {}),
        ({"specification": "- just\n- a list\n"}, "must be a mapping", {"line": 1}),
        ({"specification": ""}, "the document is empty", {}),
        ({"specification": "dependencies: [kiln-demo-tool]\n"}, "needs a name", {"field": "name"}),
        ({"specification": "name: ../etc\ndependencies: []\n"}, "contains '..'",
         {"field": "name", "line": 1}),
        ({"specification": "name: a b\ndependencies: []\n"}, "contains ' '", {"field": "name"}),
        ({"specification": "name: -rf\ndependencies: []\n"}, "starts with '-'", {"field": "name"}),
        ({"specification": "name: web\nchannels: [conda-forge]\ndependencies: [numpy]\n"},
         "channel conda-forge", {"field": "channels[0]"}),
        ({"specification": "name: web\ndependencies: ['conda-forge::numpy']\n"},
         "is not allowed on this server", {"field": "dependencies[0]"}),
        ({"specification": "name: web\ndependencies: ['numpy >=>1']\n"}, "dependencies[0]",
         {"field": "dependencies[0]", "line": 2}),
        ({"specification": "name: web\ndependencies: [numpy]\nbogus: 1\n"}, "unknown key 'bogus'",
         {"field": "bogus", "line": 3}),
        ({"specification": oversized}, "the limit on this server is 65536 bytes", {}),
        ({"specification": TOOL.format(name="web"), "is_lockfile": True}, "is_lockfile is true",
         {"field": "is_lockfile"}),
        ({"specification": TOOL.format(name="web"), "namespace": "a/b"}, "contains '/'", {}),
        ({"specification": TOOL.format(name="web"), "namespace": ".."}, "contains '..'", {}),
        ({"specification": TOOL.format(name="web"), "environment_name": "x y"}, "contains ' '",
         {"field": "name"}),
        ({"specification": TOOL.format(name="web"), "environment_description": "d" * 20000},
         "at most 16384", {"field": "environment_description"}),
        ({"specification": 5}, "", {}),
        ({"specification": ["name: x"]}, "", {}),
        ({"specification": TOOL.format(name="web"), "is_lockfile": "yes"}, "", {}),
        ({"specification": TOOL.format(name="web"), "force": "always"}, "", {}),
        ({"namespace": "default"}, "specification", {}),
        (["not", "an", "object"], "", {}),
    ]  # fmt: skip
    for body, message, where in cases:
        response = post(api, body, callers.admin)
        assert response.status_code == 400, (body, response.text)
        answer = response.json()
        assert answer["status"] == "error", answer
        assert message in answer["message"], (message, answer)
        for key, value in where.items():
            assert answer.get(key) == value, (key, answer)
    not_json = api.post(
        URL,
        content=b"{'specification':",
        headers={**callers.admin, "content-type": "application/json"},
    )
    assert not_json.status_code == 400
    assert counts(db_sessions) == before


def test_an_oversized_request_body_is_refused_with_413(
    api: Client, db_sessions: sessionmaker[Session], callers: Callers
) -> None:
    huge = {"specification": "name: web\ndependencies: []\n#" + "x" * (9 * 1024 * 1024)}
    response = post(api, huge, callers.admin)
    assert response.status_code == 413
    assert counts(db_sessions)[1] == 0


# --- solving ----------------------------------------------------------------------------------


def solve(api: Client, headers: Mapping[str, str], **params: Any) -> Any:
    return api.get(URL, params=params, headers=headers)


def test_a_solve_returns_conda_store_s_body_without_building_anything(
    api: Client,
    demo_channel: Any,
    db_sessions: sessionmaker[Session],
    callers: Callers,
) -> None:
    developer = callers.headers({"default/*": ["developer"]})
    response = solve(api, developer, conda=["kiln-demo-tool"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"solve"}  # no envelope, as in conda-store
    packages = {item["name"]: item for item in body["solve"]}
    assert set(packages) == {"kiln-demo-tool", "kiln-demo-lib", "kiln-demo-data"}
    tool = packages["kiln-demo-tool"]
    assert tool["version"] and tool["size"] > 0 and len(tool["sha256"]) == 64
    assert tool["channel"] == normalize_channel(
        str(demo_channel), channel_alias="https://conda.anaconda.org"
    )
    assert tool["channel_id"] is None  # no build has recorded the channel yet
    assert counts(db_sessions)[1:] == (0, 0, 0)

    with db_sessions.begin() as session:
        session.add(CondaChannel(name=tool["channel"]))
    with db_sessions() as session:
        channel_id = session.scalars(select(CondaChannel.id)).one()
    # conda-store's client sends the channels as `channels`; its server read `channel`.
    for key in ("channel", "channels"):
        again = solve(api, developer, conda=["kiln-demo-tool 1.0.*"], **{key: str(demo_channel)})
        assert again.status_code == 200, again.text
        assert {item["channel_id"] for item in again.json()["solve"]} == {channel_id}

    # What conda-store's client sends: `channels`, no slash after the path, one at the end.
    client_url = f"/api/v1/specification?channels={demo_channel}&conda=kiln-demo-data/"
    sent = api.get(client_url, headers=developer)
    assert sent.status_code == 200, sent.text
    assert [item["name"] for item in sent.json()["solve"]] == ["kiln-demo-data"]

    pinned = solve(api, developer, conda=["kiln-demo-lib <2"], pip=["requests"])
    assert pinned.status_code == 200, pinned.text
    [lib] = pinned.json()["solve"]
    assert lib["version"].startswith("1.")


def test_solving_needs_environment_solve_on_the_callers_primary_namespace(
    api: Client, callers: Callers
) -> None:
    assert solve(api, {}, conda=["kiln-demo-data"]).status_code == 401
    viewer = callers.headers({"default/*": ["viewer"]})
    refused = solve(api, viewer, conda=["kiln-demo-data"])
    assert refused.status_code == 403
    assert "environment::solve on default" in refused.json()["message"]
    elsewhere = callers.headers({"lab/*": ["developer"]})  # primary namespace: default
    assert solve(api, elsewhere, conda=["kiln-demo-data"]).status_code == 403
    at_home = callers.headers({"lab/*": ["developer"]}, primary_namespace="lab")
    assert solve(api, at_home, conda=["kiln-demo-data"]).status_code == 200
    alice = callers.session_headers("alice")
    assert solve(api, alice, conda=["kiln-demo-data"]).status_code == 200


def test_bad_solve_requests_are_refused_as_a_submission_would_be(
    api: Client, callers: Callers
) -> None:
    developer = callers.headers({"default/*": ["developer"]})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"conda": ["numpy"], "channel": ["conda-forge"]}, "channel conda-forge"),
        ({"conda": ["conda-forge::numpy"]}, "is not allowed on this server"),
        ({"conda": ["numpy >=>1"]}, "dependencies[0]"),
        ({"conda": ["kiln-demo-legacy", "kiln-demo-lib >=2"]}, "cannot be satisfied"),
        ({"conda": ["kiln-demo-nothing"]}, "cannot be satisfied"),
        ({}, "nothing to solve"),
        ({"pip": ["requests"]}, "nothing to solve"),
        ({"conda": ["kiln-demo-data"], "pip": ["not a requirement!!"]}, "pip"),
        ({"conda": ["kiln-demo-data"], "format": "docker"}, "format must be one of yaml"),
    ]
    for params, message in cases:
        response = solve(api, developer, **params)
        assert response.status_code == 400, (params, response.text)
        assert message in response.json()["message"], (params, response.json())


def test_solves_beyond_the_limit_wait_then_are_told_to_come_back(
    build_settings: BuildSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = Solver(build_settings, concurrency=1, queue_seconds=0.2)
    release = threading.Event()
    started = threading.Event()

    def slow_solve(*args: object) -> Any:
        started.set()
        release.wait(10)
        raise RuntimeError("never mind")

    monkeypatch.setattr(solver, "_solve_now", slow_solve)
    spec = EnvironmentSpec(name="solve", dependencies=("kiln-demo-data",))

    async def scenario() -> None:
        first = asyncio.ensure_future(solver.solve(spec, ["file:///nowhere"]))
        await asyncio.to_thread(started.wait, 5)
        with pytest.raises(SolverBusy, match="try again"):
            await solver.solve(spec, ["file:///nowhere"])
        release.set()
        with pytest.raises(RuntimeError):
            await first
        # The slot is free again once the first solve's thread has ended.
        started.clear()
        release.clear()
        second = asyncio.ensure_future(solver.solve(spec, ["file:///nowhere"]))
        await asyncio.to_thread(started.wait, 5)
        release.set()
        with pytest.raises(RuntimeError):
            await second

    asyncio.run(scenario())

"""Settings at three levels through the REST API: precedence, validation, global-only keys,
permissions, and the build settings a build of an environment gets."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.models import Setting
from appliance.services.settings import SETTING_KEYS, effective_build_settings
from tests.fixtures.api import Callers

GLOBAL, TEAM, ENV = "/api/v1/setting/", "/api/v1/setting/team/", "/api/v1/setting/team/env1/"


def _rows(db_sessions: sessionmaker[Session]) -> int:
    with db_sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Setting)) or 0)


def _put(api: TestClient[Litestar], path: str, body: Any, headers: dict[str, str]) -> Any:
    answer = api.put(path, json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_most_specific_level_wins_and_lists_replace(
    api: TestClient[Litestar], callers: Callers, demo_channel: Path
) -> None:
    admin = callers.admin
    deployment = api.get(GLOBAL, headers=admin).json()["data"]
    assert set(deployment) == set(SETTING_KEYS)
    assert deployment["conda_allowed_channels"] == [str(demo_channel)]
    assert deployment["conda_default_packages"] == []

    updated = _put(api, GLOBAL, {"conda_default_packages": ["python", "pip"]}, admin)
    assert updated["message"] == "global setting keys ['conda_default_packages'] updated"
    _put(api, TEAM, {"conda_default_packages": ["numpy"]}, admin)
    _put(api, ENV, {"conda_default_packages": ["scipy"], "build_artifacts": ["LOCKFILE"]}, admin)

    def packages(path: str) -> list[str]:
        return list(api.get(path, headers=admin).json()["data"]["conda_default_packages"])

    assert packages(GLOBAL) == ["python", "pip"]
    assert packages(TEAM) == ["numpy"]
    assert packages(ENV) == ["scipy"]
    assert packages("/api/v1/setting/team/env2/") == ["numpy"]
    assert packages("/api/v1/setting/other/") == ["python", "pip"]
    # LOGS and LOCKFILE are always produced, whatever a level asks for.
    env = api.get(ENV, headers=admin).json()["data"]
    assert env["build_artifacts"] == ["LOGS", "LOCKFILE"]
    assert (
        api.get(TEAM, headers=admin).json()["data"]["build_artifacts"]
        == deployment["build_artifacts"]
    )


def test_one_namespace_values_never_leak_into_another_or_the_defaults(
    api: TestClient[Litestar], callers: Callers, api_context: ApiContext
) -> None:
    defaults = copy.deepcopy(api_context.setting_defaults)
    _put(api, TEAM, {"conda_included_packages": ["ipykernel"]}, callers.admin)
    assert api.get(TEAM, headers=callers.admin).json()["data"]["conda_included_packages"] == [
        "ipykernel"
    ]
    for path in ("/api/v1/setting/other/", GLOBAL, "/api/v1/setting/other/x/"):
        assert api.get(path, headers=callers.admin).json()["data"]["conda_included_packages"] == []
    assert api_context.setting_defaults == defaults


def test_null_removes_a_levels_value(api: TestClient[Litestar], callers: Callers) -> None:
    _put(api, GLOBAL, {"conda_required_packages": ["python"]}, callers.admin)
    _put(api, TEAM, {"conda_required_packages": ["numpy"]}, callers.admin)
    removed = _put(api, TEAM, {"conda_required_packages": None}, callers.admin)
    assert removed["data"]["conda_required_packages"] == ["python"]


def test_unknown_keys_are_refused_naming_the_allowed_ones(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    answer = api.put(
        GLOBAL, json={"conda_command": "mamba", "conda_default_packages": []},
        headers=callers.admin,
    )  # fmt: skip
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "unknown setting key(s) conda_command" in message
    assert "allowed: build_artifacts, conda_solve_platforms" in message
    assert _rows(db_sessions) == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"conda_default_channels": 5}, "expected a list"),
        ({"conda_default_channels": [5]}, "unicode string"),
        ({"conda_default_channels": ["../up"]}, "relative path"),
        ({"conda_max_solve_time": "ten"}, "expected an int"),
        ({"conda_max_solve_time": True}, "whole number"),
        ({"conda_max_solve_time": 0}, "less than 1"),
        ({"build_artifacts": ["WHEEL"]}, "unknown artifact type 'WHEEL'"),
        ({"conda_solve_platforms": ["win-128"]}, "unknown platform 'win-128'"),
        ({"conda_default_packages": ["numpy >=1 <2 ]"]}, "conda_default_packages"),
        ({"pypi_required_packages": ["not a requirement!"]}, "not a pip requirement"),
        ({"default_permissions": "999"}, "not an octal mode"),
        ({"conda_channel_alias": "ftp://mirror"}, "not an http(s)://"),
        ({"conda_default_packages": ["x" * 70_000]}, "larger than"),
    ],
)
def test_wrong_values_are_refused_and_nothing_is_written(
    api: TestClient[Litestar],
    callers: Callers,
    db_sessions: sessionmaker[Session],
    body: dict[str, Any],
    says: str,
) -> None:
    # A valid key in the same request is not written either.
    answer = api.put(
        GLOBAL, json={"conda_included_packages": ["ipykernel"], **body}, headers=callers.admin
    )
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["message"]
    assert _rows(db_sessions) == 0


def test_malformed_bodies_and_names_are_400s(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    headers = {**callers.admin, "Content-Type": "application/json"}
    assert api.put(GLOBAL, content=b"{not json", headers=headers).status_code == 400
    assert api.put(GLOBAL, json=["conda_default_packages"], headers=headers).status_code == 400
    bad_name = api.get("/api/v1/setting/te$am/", headers=callers.admin)
    assert bad_name.status_code == 400
    assert "namespace name" in bad_name.json()["message"]
    assert api.put("/api/v1/setting/..%2F/x/", json={}, headers=callers.admin).status_code in (
        400,
        404,
    )
    assert _rows(db_sessions) == 0


def test_global_keys_are_refused_below_the_global_level_unless_echoed(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    refused = api.put(TEAM, json={"conda_max_solve_time": 10}, headers=callers.admin)
    assert refused.status_code == 400
    assert "conda_max_solve_time is a global setting key" in refused.json()["message"]
    refused = api.put(ENV, json={"conda_channel_alias": "https://mirror"}, headers=callers.admin)
    assert refused.status_code == 400
    assert _rows(db_sessions) == 0

    # GET, edit one key, PUT the whole object back: the global keys are echoed unchanged.
    current = api.get(TEAM, headers=callers.admin).json()["data"]
    current["conda_included_packages"] = ["ipykernel"]
    saved = _put(api, TEAM, current, callers.admin)
    assert saved["data"]["conda_included_packages"] == ["ipykernel"]
    assert "conda_max_solve_time" not in saved["message"]


def test_deployment_keys_are_changed_in_the_configuration_file_only(
    api: TestClient[Litestar], callers: Callers, db_sessions: sessionmaker[Session]
) -> None:
    answer = api.put(GLOBAL, json={"storage_threshold": 0}, headers=callers.admin)
    assert answer.status_code == 400
    assert "c.CondaStore.storage_threshold in kiln_config.py" in answer.json()["message"]
    assert _rows(db_sessions) == 0
    settings = api.get(GLOBAL, headers=callers.admin).json()["data"]
    assert _put(api, GLOBAL, settings, callers.admin)["data"] == settings


def test_global_values_apply_below_and_are_used_by_builds(
    api: TestClient[Litestar],
    callers: Callers,
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
) -> None:
    base = api_context.build_settings
    with db_sessions() as session:
        assert effective_build_settings(session, base, "team", "env1") is base
    _put(api, GLOBAL, {"conda_max_solve_time": 42, "default_permissions": "750"}, callers.admin)
    _put(api, TEAM, {"conda_included_packages": ["ipykernel"]}, callers.admin)
    _put(api, ENV, {"pypi_required_packages": ["requests"], "build_artifacts": []}, callers.admin)
    team = api.get(TEAM, headers=callers.admin).json()["data"]
    assert team["conda_max_solve_time"] == 42
    with db_sessions() as session:
        built = effective_build_settings(session, base, "team", "env1")
        other = effective_build_settings(session, base, "other")
    assert built.max_solve_seconds == 42
    assert built.permissions.mode == "750"
    assert built.policy.conda_included == ("ipykernel",)
    assert built.policy.pypi_required == ("requests",)
    assert built.artifacts == frozenset({"LOGS", "LOCKFILE"})
    assert built.allowed_channels == base.allowed_channels
    assert other.policy.conda_included == ()
    assert other.max_solve_seconds == 42


def test_allowed_channels_below_the_global_level_only_narrow(
    api: TestClient[Litestar], callers: Callers, demo_channel: Path
) -> None:
    wider = api.put(TEAM, json={"conda_allowed_channels": ["conda-forge"]}, headers=callers.admin)
    assert wider.status_code == 400
    assert "can only narrow" in wider.json()["message"]
    everything = api.put(TEAM, json={"conda_allowed_channels": []}, headers=callers.admin)
    assert everything.status_code == 400
    assert "cannot be empty" in everything.json()["message"]
    same = _put(api, TEAM, {"conda_allowed_channels": [f"file://{demo_channel}"]}, callers.admin)
    assert same["data"]["conda_allowed_channels"] == [f"file://{demo_channel}"]

    # The operator narrows the global list later: the namespace's list cannot outgrow it.
    _put(api, GLOBAL, {"conda_allowed_channels": ["/srv/other"]}, callers.admin)
    team = api.get(TEAM, headers=callers.admin).json()["data"]
    assert team["conda_allowed_channels"] == ["/srv/other"]


def test_reading_and_changing_need_the_setting_permissions(
    api: TestClient[Litestar], callers: Callers
) -> None:
    everywhere_editor = callers.headers({"*/*": ["editor"]})
    team_admin = callers.headers({"team/*": ["admin"]})
    team_editor = callers.headers({"team/*": ["editor"]})
    env_admin = callers.headers({"team/env1": ["admin"]})
    viewer = callers.headers({"*/*": ["viewer"]})
    body = {"conda_included_packages": ["ipykernel"]}

    assert api.get(GLOBAL, headers=everywhere_editor).status_code == 200
    refused = api.put(GLOBAL, json=body, headers=everywhere_editor)
    assert refused.status_code == 403
    assert "setting::update on every namespace" in refused.json()["message"]
    assert api.get(GLOBAL, headers=team_admin).status_code == 403
    assert api.get(GLOBAL, headers=viewer).status_code == 403
    assert api.get(GLOBAL).status_code == 401
    assert api.put(GLOBAL, json=body).status_code == 401

    assert api.get(TEAM, headers=team_editor).status_code == 200
    assert api.put(TEAM, json=body, headers=team_editor).status_code == 403
    assert api.put(TEAM, json=body, headers=team_admin).status_code == 200
    assert api.get("/api/v1/setting/other/", headers=team_admin).status_code == 403
    assert api.get(TEAM, headers=viewer).status_code == 403

    assert api.put(ENV, json=body, headers=env_admin).status_code == 200
    assert api.put(TEAM, json=body, headers=env_admin).status_code == 403
    assert api.put("/api/v1/setting/team/env2/", json=body, headers=env_admin).status_code == 403
    assert api.get(ENV, headers=team_editor).status_code == 200
    assert api.get(ENV).status_code == 401

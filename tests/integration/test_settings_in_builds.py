"""Settings stored through the API change what builds do: at submission (packages, channels)
and on the worker (which artifacts are made)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.models import Build
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.integration.test_api_builds import TOOL, Builds


def test_a_namespace_s_settings_shape_its_builds_and_not_others(
    api: TestClient[Litestar],
    callers: Callers,
    db_sessions: sessionmaker[Session],
    api_context: ApiContext,
    database: TestDatabase,
) -> None:
    for name in ("lean", "full"):
        api.post(f"/api/v1/namespace/{name}/", headers=callers.admin)
    lean = {"build_artifacts": ["LOGS", "LOCKFILE"], "conda_included_packages": ["kiln-demo-data"]}
    answer = api.put("/api/v1/setting/lean/", json=lean, headers=callers.admin)
    assert answer.status_code == 200, answer.text

    builds = Builds(db_sessions, api_context, database)
    lean_build = builds.submit(TOOL, "tool", "lean")
    full_build = builds.submit(TOOL, "tool", "full")
    builds.run_queued()

    def artifacts(build_id: int) -> set[str]:
        got = api.get(f"/api/v1/build/{build_id}/", headers=callers.admin).json()["data"]
        assert got["status"] == "COMPLETED", got
        return {a["artifact_type"] for a in got["build_artifacts"]}

    assert "CONDA_PACK" not in artifacts(lean_build)
    assert "CONDA_PACK" in artifacts(full_build)
    with db_sessions() as session:
        lean_spec = session.get(Build, lean_build).specification.spec  # type: ignore[union-attr]
        full_spec = session.get(Build, full_build).specification.spec  # type: ignore[union-attr]
    assert "kiln-demo-data" in str(lean_spec["dependencies"])
    assert "kiln-demo-data" not in str(full_spec["dependencies"])

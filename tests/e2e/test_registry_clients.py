"""Real registry clients from Debian against Kiln's registry over HTTP: ``skopeo inspect`` and
``skopeo copy`` (plain HTTP: ``--tls-verify=false``) with ``--creds user:TOKEN`` and without,
then ``umoci unpack`` of the copied OCI layout.

Two servers:

- ``kiln web`` (granian) on the test database, serving an image written into storage the way
  the image builder stores them (tests.integration.test_registry): the registry alone;
- ``kiln serve`` building an environment through the API with its worker: the pulled image
  is unpacked and the environment's ``bin/kiln-demo-tool`` run from the root filesystem
  prints the prefix the environment has inside the image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.config.loader import KilnConfig
from tests.e2e.kiln import ServedKiln, served_kiln
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.serve import free_port
from tests.integration.test_registry import Environments, layer, store_image
from tests.integration.test_web_server import KilnWeb

pytestmark = pytest.mark.skipif(
    not (shutil.which("skopeo") and shutil.which("umoci")),
    reason="needs Debian's skopeo and umoci (.ci/system-deps)",
)

#: Bounds on a client command and on a build through kiln serve.
CLIENT_TIMEOUT = 120
BUILD_TIMEOUT = 300


def run(*command: str | Path, timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout
    )
    return done


def must(*command: str | Path) -> str:
    done = run(*command)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def skopeo(*args: str | Path) -> list[str | Path]:
    """A skopeo command that reads no registry configuration or login of the host."""
    return ["skopeo", "--registries-conf", "/dev/null", *args]


def inspect(reference: str, creds: str | None = None) -> dict[str, Any]:
    """``skopeo inspect`` of ``reference`` with ``--creds USER:TOKEN`` (or none)."""
    login = ["--no-creds"] if creds is None else ["--creds", creds]
    out = must(*skopeo("inspect", "--tls-verify=false", *login, f"docker://{reference}"))
    found: dict[str, Any] = json.loads(out)
    return found


def copy(reference: str, layout: Path, tag: str, creds: str | None = None) -> None:
    """``skopeo copy`` of ``reference`` into the OCI layout ``layout`` as ``tag``."""
    login = ["--src-no-creds"] if creds is None else ["--src-creds", creds]
    source = f"docker://{reference}"
    must(*skopeo("copy", "--src-tls-verify=false", *login, source, f"oci:{layout}:{tag}"))


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """``umoci unpack`` (rootless unless root); the bundle's root filesystem."""
    rootless = [] if _is_root() else ["--rootless"]
    must("umoci", "unpack", *rootless, "--image", f"{layout}:{tag}", bundle)
    return bundle / "rootfs"


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


# --- the registry alone: kiln web and an image in storage -----------------------------------------


@pytest.fixture
def web_port() -> int:
    return free_port()


@pytest.fixture
def kiln_config_lines(database: TestDatabase, web_port: int) -> list[str]:
    return [
        f"c.CondaStore.database_url = {database.url!r}",
        "c.CondaStoreServer.address = '127.0.0.1'",
        f"c.CondaStoreServer.port = {web_port}",
    ]


@pytest.fixture
def kiln_web(kiln_config: KilnConfig, web_port: int) -> Iterator[KilnWeb]:
    web = KilnWeb(kiln_config.data_dir.root, web_port)
    try:
        web.wait_until_serving()
        yield web
    finally:
        web.stop()


def test_skopeo_inspects_and_copies_an_image_and_umoci_unpacks_it(
    kiln_web: KilnWeb,
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
    callers: Callers,
    tmp_path: Path,
) -> None:
    image = store_image(
        api_context.storage,
        [
            layer({"etc/kiln-label": b"from kiln\n"}),
            layer(
                {"opt/tool/bin/hello": b"#!/bin/sh\necho hello\n"},
                executable=["opt/tool/bin/hello"],
            ),
        ],
    )
    build_id = Environments(db_sessions, api_context).build("team", "tool", image)
    token = callers.token({"team/*": ["viewer"]})
    creds = f"anyone:{token}"
    host = f"127.0.0.1:{kiln_web.port}"

    for tag in ("latest", str(build_id)):
        inspected = inspect(f"{host}/team/tool:{tag}", creds)
        assert inspected["Digest"] == image.manifest
        assert inspected["Layers"] == list(image.layers)
        assert inspected["Labels"] == {"test": "test"}
    tags = inspect(f"{host}/team/tool:latest", creds)["RepoTags"]
    assert sorted(tags) == sorted(["latest", str(build_id)])

    refused = run(*skopeo("inspect", "--tls-verify=false", f"docker://{host}/team/tool:latest"))
    assert refused.returncode != 0
    assert "401" in refused.stderr or "unauthorized" in refused.stderr.lower(), refused.stderr
    wrong = run(
        *skopeo("inspect", "--tls-verify=false", "--creds", "anyone:not-a-token",
                f"docker://{host}/team/tool:latest")
    )  # fmt: skip
    assert wrong.returncode != 0

    # HEAD through granian: the GET answer's headers, no body
    for digest in (image.manifest, image.layers[1]):
        kind = "manifests" if digest == image.manifest else "blobs"
        head = httpx.head(
            f"http://{host}/v2/team/tool/{kind}/{digest}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(image.blobs[digest]))
        assert head.headers["docker-content-digest"] == digest

    layout = tmp_path / "layout"
    copy(f"{host}/team/tool:latest", layout, "pulled", creds)
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.manifest]  # copied byte for byte
    rootfs = unpack(layout, "pulled", tmp_path / "bundle")
    assert (rootfs / "etc" / "kiln-label").read_text() == "from kiln\n"
    assert must("sh", rootfs / "opt/tool/bin/hello").strip() == "hello"


class TestAnonymousPulls:
    @pytest.fixture
    def kiln_config_lines(self, database: TestDatabase, web_port: int) -> list[str]:
        return [
            f"c.CondaStore.database_url = {database.url!r}",
            "c.CondaStoreServer.address = '127.0.0.1'",
            f"c.CondaStoreServer.port = {web_port}",
            "c.AuthorizationBackend.unauthenticated_role_bindings = {'public/*': ['viewer']}",
        ]

    def test_skopeo_pulls_without_credentials_where_anonymous_reads_are_allowed(
        self,
        kiln_web: KilnWeb,
        api_context: ApiContext,
        db_sessions: sessionmaker[Session],
        tmp_path: Path,
    ) -> None:
        image = store_image(api_context.storage, [layer({"etc/public": b"yes\n"})])
        environments = Environments(db_sessions, api_context)
        environments.build("public", "tool", image)
        environments.build("team", "tool", image)
        host = f"127.0.0.1:{kiln_web.port}"
        assert inspect(f"{host}/public/tool:latest")["Digest"] == image.manifest
        copy(f"{host}/public/tool:latest", tmp_path / "layout", "anon")
        rootfs = unpack(tmp_path / "layout", "anon", tmp_path / "bundle")
        assert (rootfs / "etc/public").read_text() == "yes\n"
        private = run(*skopeo("inspect", "--tls-verify=false", f"docker://{host}/team/tool:latest"))
        assert private.returncode != 0


# --- an environment built by kiln serve -----------------------------------------------------------


@pytest.fixture(scope="module")
def live_kiln(demo_channel: Path) -> Iterator[ServedKiln]:
    with served_kiln(demo_channel, prefix="kiln-registry-test-") as served:
        yield served


def _api(server: ServedKiln, token: str, method: str, path: str, **options: Any) -> Any:
    answer = httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **options,
    )
    assert answer.status_code in (200, 201), f"{method} {path}: {answer.text}"
    return answer.json()["data"]


def _wait_for_completion(server: ServedKiln, token: str, build_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + BUILD_TIMEOUT
    while True:
        build: dict[str, Any] = _api(server, token, "GET", f"/build/{build_id}/")
        if build["status"] not in ("QUEUED", "BUILDING"):
            assert build["status"] == "COMPLETED", f"{build}\n{server.output()}"
            return build
        assert time.monotonic() < deadline, f"build {build_id} still {build['status']}"
        time.sleep(0.5)


def test_an_environment_built_by_kiln_is_pulled_unpacked_and_run(
    live_kiln: ServedKiln, tmp_path: Path
) -> None:
    token = live_kiln.mint_token()
    specification = "name: tool\ndependencies:\n  - kiln-demo-tool\n"
    submitted = _api(
        live_kiln, token, "POST", "/specification/",
        json={"namespace": "team", "specification": specification},
    )  # fmt: skip
    build_id = int(submitted["build_id"])
    build = _wait_for_completion(live_kiln, token, build_id)
    kinds = {artifact["artifact_type"] for artifact in build["build_artifacts"]}
    assert "OCI_IMAGE" in kinds, build

    host = f"127.0.0.1:{live_kiln.port}"
    reference = httpx.get(
        f"{live_kiln.url}/api/v1/build/{build_id}/docker/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).text
    assert reference == f"{host}/team/tool:{build_id}"
    creds = f"admin:{token}"
    inspected = inspect(f"{host}/team/tool:latest", creds)
    assert inspected["Digest"] == inspect(reference, creds)["Digest"]

    layout = tmp_path / "layout"
    copy(f"{host}/team/tool:latest", layout, "tool", creds)
    rootfs = unpack(layout, "tool", tmp_path / "bundle")
    prefix = "/opt/conda/envs/tool"
    tool = rootfs / prefix.lstrip("/") / "bin" / "kiln-demo-tool"
    assert tool.is_file(), sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*"))[:50]
    assert must("sh", tool).strip() == prefix
    assert must("sh", tool, "--version").strip() == "kiln-demo-tool 1.0.0"

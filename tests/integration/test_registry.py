"""Kiln's OCI registry (``/v2/``) with a real database and storage: manifests by tag and
digest, blobs with ranges, tags and catalog pages, who may pull what (Basic, Bearer,
anonymous), the distribution spec's errors and headers, refused pushes, and presigned
redirects with S3 storage (a real SeaweedFS server).

Images are written the way the image builder stores them (the shared contract: blobs at
``oci/blobs/sha256/<hex>``, an OCI_IMAGE artifact whose key is the manifest's), with builds
recorded through the service layer and marked completed directly, so no worker runs here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Build, BuildArtifact, Environment
from appliance.services.environments import delete_environment
from appliance.services.images import blob_key
from appliance.storage.base import Storage
from appliance.web.app import create_app
from appliance.web.settings import WebSettings
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import submit

Client = TestClient[Litestar]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
API_VERSION = ("docker-distribution-api-version", "registry/2.0")
CHALLENGE = 'Basic realm="Kiln"'

#: What skopeo 1.9.3 (containers/image) sends, one header per type.
SKOPEO_ACCEPT = [
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
]
DOCKER_ONLY_ACCEPT = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json"
)

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"


# --- images, written as the image builder stores them -------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def layer(files: Mapping[str, bytes], executable: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """A deterministic layer holding ``files``: (uncompressed tar, gzip of it)."""
    raw = io.BytesIO()
    directories = sorted(
        {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    )
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size, info.mtime = len(files[path]), 0
            info.mode = 0o755 if path in executable else 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    tar_bytes = raw.getvalue()
    return tar_bytes, gzip.compress(tar_bytes, mtime=0)


@dataclass(frozen=True)
class Image:
    """An image in storage: its manifest's digest and bytes, its config's and layers'."""

    manifest: str
    manifest_bytes: bytes
    config: str
    layers: tuple[str, ...]
    blobs: Mapping[str, bytes]


def store_image(
    storage: Storage, layers: Sequence[tuple[bytes, bytes]], *, label: str = "test"
) -> Image:
    """Write ``layers`` (from :func:`layer`), a config and a manifest as blobs."""
    blobs: dict[str, bytes] = {}
    descriptors: list[dict[str, str | int]] = []
    for _, gz_bytes in layers:
        digest = sha256(gz_bytes)
        blobs[digest] = gz_bytes
        descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": len(gz_bytes)})
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"test": label}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t, _ in layers]},
        }
    )
    blobs[sha256(config)] = config
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": descriptors,
        }
    )
    blobs[sha256(manifest)] = manifest
    for digest, data in blobs.items():
        storage.put(blob_key(digest), data)
    return Image(
        manifest=sha256(manifest),
        manifest_bytes=manifest,
        config=sha256(config),
        layers=tuple(str(d["digest"]) for d in descriptors),
        blobs=blobs,
    )


def simple_image(storage: Storage, label: str) -> Image:
    """An image of two small layers, distinct per ``label``."""
    return store_image(
        storage,
        [
            layer({"etc/kiln-label": label.encode()}),
            layer({f"opt/{label}/data.bin": (label * 5000).encode()}),
        ],
        label=label,
    )


class Environments:
    """Builds recorded as the API records them, completed here with an image."""

    def __init__(self, sessions: sessionmaker[Session], context: ApiContext) -> None:
        self.sessions = sessions
        self.context = context

    def build(
        self, namespace: str, environment: str, image: Image | None, *, current: bool = True
    ) -> int:
        """A COMPLETED build of ``namespace/environment`` with ``image`` (None: no image),
        made the current build when ``current``."""
        build_id = submit(
            self.sessions,
            self.context.build_settings,
            SPEC.format(name=environment),
            namespace=namespace,
            force=True,
        )
        with self.sessions.begin() as session:
            build = session.get_one(Build, build_id)
            build.status = BuildStatus.COMPLETED
            build.ended_on = datetime.now(UTC)
            if image is not None:
                session.add(
                    BuildArtifact(
                        build_id=build_id,
                        artifact_type=BuildArtifactType.OCI_IMAGE,
                        key=blob_key(image.manifest),
                    )
                )
            environment_id = build.environment_id
            if current:
                session.execute(
                    update(Environment)
                    .where(Environment.id == environment_id)
                    .values(current_build_id=build_id)
                )
        return build_id

    def delete_build(self, build_id: int) -> None:
        with self.sessions.begin() as session:
            session.get_one(Build, build_id).deleted_on = datetime.now(UTC)


@pytest.fixture
def environments(db_sessions: sessionmaker[Session], api_context: ApiContext) -> Environments:
    return Environments(db_sessions, api_context)


@pytest.fixture
def registry(api_context: ApiContext, database: TestDatabase) -> Iterator[Client]:
    """The web app with the API and the registry, on this test's database and storage."""
    settings = WebSettings(database_url=database.url, enable_api=True, enable_registry=True)
    with TestClient(create_app(settings, api=api_context)) as client:
        yield client


def basic(token: str, user: str = "someone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


#: containers/image's answer to a Basic challenge when it has no credentials.
EMPTY_BASIC = {"Authorization": "Basic " + base64.b64encode(b":").decode()}


def spec_error(response: httpx.Response, status: int, code: str) -> str:
    """Check ``response`` is the spec's error ``code``; its message."""
    assert response.status_code == status, response.text
    assert response.headers[API_VERSION[0]] == API_VERSION[1]
    assert response.headers["content-type"].startswith("application/json")
    errors = response.json()["errors"]
    assert len(errors) == 1 and errors[0]["code"] == code, errors
    if status == 401:
        assert response.headers["www-authenticate"] == CHALLENGE
    return str(errors[0]["message"])


# --- /v2/ ---------------------------------------------------------------------------------------


def test_the_version_check_answers_callers_with_credentials_and_challenges_the_others(
    registry: Client, callers: Callers
) -> None:
    token = callers.token({"team/*": ["viewer"]})
    for headers in (basic(token), {"Authorization": f"Bearer {token}"}):
        answer = registry.get("/v2/", headers=headers)
        assert (answer.status_code, answer.json()) == (200, {})
        assert answer.headers[API_VERSION[0]] == API_VERSION[1]
        head = registry.head("/v2/", headers=headers)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == "2"
        assert head.headers[API_VERSION[0]] == API_VERSION[1]
    assert registry.get("/v2", headers=basic(token)).status_code == 200

    message = spec_error(registry.get("/v2/"), 401, "UNAUTHORIZED")
    assert "a Kiln token as the password" in message
    head = registry.head("/v2/")
    assert (head.status_code, head.content) == (401, b"")
    assert head.headers["www-authenticate"] == CHALLENGE
    # Anonymous by choice (skopeo without --creds): nothing is readable anonymously here.
    spec_error(registry.get("/v2/", headers=EMPTY_BASIC), 401, "UNAUTHORIZED")


def test_credentials_that_do_not_verify_are_refused_with_the_reason(
    registry: Client, callers: Callers
) -> None:
    forged = callers.forged({"*/*": ["admin"]})
    for headers in (
        basic(forged),
        {"Authorization": f"Bearer {forged}"},
        basic(""),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest abc"},
    ):
        message = spec_error(registry.get("/v2/", headers=headers), 401, "UNAUTHORIZED")
        assert message
    expired = callers.token({"*/*": ["admin"]}, lifetime=-timedelta(days=1))
    assert "expired" in spec_error(
        registry.get("/v2/", headers=basic(expired)), 401, "UNAUTHORIZED"
    )


# --- manifests ----------------------------------------------------------------------------------


def test_manifests_by_tag_build_id_and_digest_with_their_digest_type_and_length(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    first = simple_image(api_context.storage, "first")
    second = simple_image(api_context.storage, "second")
    old = environments.build("team", "tool", first)
    new = environments.build("team", "tool", second)
    viewer = basic(callers.token({"team/tool": ["viewer"]}))
    expected = {
        "latest": second,
        str(new): second,
        str(old): first,
        first.manifest: first,
        second.manifest: second,
    }
    for reference, image in expected.items():
        url = f"/v2/team/tool/manifests/{reference}"
        answer = registry.get(url, headers={**viewer, "Accept": ", ".join(SKOPEO_ACCEPT)})
        assert answer.status_code == 200, (reference, answer.text)
        assert answer.content == image.manifest_bytes
        assert answer.headers["docker-content-digest"] == image.manifest
        assert answer.headers["content-type"] == OCI_MANIFEST
        assert answer.headers["content-length"] == str(len(image.manifest_bytes))
        assert answer.headers[API_VERSION[0]] == API_VERSION[1]
        head = registry.head(url, headers=viewer)
        assert (head.status_code, head.content) == (200, b"")
        for name in ("docker-content-digest", "content-type", "content-length"):
            assert head.headers[name] == answer.headers[name], name

    # latest follows the current build
    with environments.sessions.begin() as session:
        session.execute(update(Environment).values(current_build_id=old))
    latest = registry.get("/v2/team/tool/manifests/latest", headers=viewer)
    assert latest.headers["docker-content-digest"] == first.manifest


def test_accept_negotiation_serves_oci_to_clients_that_take_it_or_name_no_manifest_type(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "negotiated")
    environments.build("team", "tool", image)
    viewer = basic(callers.token({"team/*": ["viewer"]}))
    url = "/v2/team/tool/manifests/latest"
    # containers/image sends one Accept header per type
    several = httpx.Headers([*viewer.items(), *(("Accept", t) for t in SKOPEO_ACCEPT)])
    assert registry.get(url, headers=several).status_code == 200
    for accept in (None, "*/*", "application/json", f"{OCI_MANIFEST};q=0.9, */*;q=0.1"):
        headers = viewer if accept is None else {**viewer, "Accept": accept}
        answer = registry.get(url, headers=headers)
        assert answer.status_code == 200, accept
        assert answer.headers["content-type"] == OCI_MANIFEST
    refused = registry.get(url, headers={**viewer, "Accept": DOCKER_ONLY_ACCEPT})
    assert "Accept header does not list" in spec_error(refused, 404, "MANIFEST_UNKNOWN")
    head = registry.head(url, headers={**viewer, "Accept": DOCKER_ONLY_ACCEPT})
    assert (head.status_code, head.content) == (404, b"")


def test_missing_manifests_and_repositories_are_the_spec_s_errors(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    mine = simple_image(api_context.storage, "mine")
    theirs = simple_image(api_context.storage, "theirs")
    deleted_image = simple_image(api_context.storage, "deleted")
    deleted = environments.build("team", "tool", deleted_image, current=False)
    environments.delete_build(deleted)
    environments.build("team", "tool", mine)
    environments.build("team", "other", theirs)
    environments.build("team", "plain", None)
    admin = basic(callers.token({"*/*": ["admin"]}))

    def error(url: str, status: int, code: str) -> str:
        answer = registry.get(url, headers=admin)
        message = spec_error(answer, status, code)
        return message

    base = "/v2/team/tool/manifests"
    assert "not an image of team/tool" in error(
        f"{base}/{theirs.manifest}", 404, "MANIFEST_UNKNOWN"
    )
    assert "not an image of team/tool" in error(
        f"{base}/{deleted_image.manifest}", 404, "MANIFEST_UNKNOWN"
    )
    assert "has no tag" in error(f"{base}/{deleted}", 404, "MANIFEST_UNKNOWN")
    assert "has no tag 'v1'" in error(f"{base}/v1", 404, "MANIFEST_UNKNOWN")
    assert "has no image" in error("/v2/team/plain/manifests/latest", 404, "MANIFEST_UNKNOWN")
    assert "no environment nothing" in error(
        "/v2/team/nothing/manifests/latest", 404, "NAME_UNKNOWN"
    )
    assert "<namespace>/<environment>" in error("/v2/tool/manifests/latest", 404, "NAME_UNKNOWN")
    error("/v2/a/b/c/manifests/latest", 404, "NAME_UNKNOWN")
    error("/v2/team/t%20ol/manifests/latest", 400, "NAME_INVALID")
    answer = registry.get(f"{base}/v1", headers=admin)
    assert answer.json()["errors"][0]["detail"] == {"name": "team/tool", "reference": "v1"}


def test_a_deleted_environment_is_an_unknown_name(
    registry: Client,
    callers: Callers,
    environments: Environments,
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
) -> None:
    environments.build("team", "tool", simple_image(api_context.storage, "gone"))
    with db_sessions.begin() as session:
        delete_environment(session, "team", "tool")
    admin = basic(callers.token({"*/*": ["admin"]}))
    answer = registry.get("/v2/team/tool/manifests/latest", headers=admin)
    spec_error(answer, 404, "NAME_UNKNOWN")


# --- blobs --------------------------------------------------------------------------------------


def test_blobs_of_an_image_are_streamed_with_their_digest_and_length(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "blobs")
    environments.build("team", "tool", image)
    viewer = {"Authorization": f"Bearer {callers.token({'team/tool': ['viewer']})}"}
    for digest, data in image.blobs.items():  # config, layers and the manifest itself
        url = f"/v2/team/tool/blobs/{digest}"
        answer = registry.get(url, headers=viewer)
        assert answer.status_code == 200, answer.text
        assert answer.content == data
        assert answer.headers["docker-content-digest"] == digest
        assert answer.headers["content-length"] == str(len(data))
        assert answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["accept-ranges"] == "bytes"
        assert answer.headers[API_VERSION[0]] == API_VERSION[1]
        head = registry.head(url, headers=viewer)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["docker-content-digest"] == digest


def test_ranges_of_a_blob(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "ranges")
    environments.build("team", "tool", image)
    digest = image.layers[1]
    data = image.blobs[digest]
    size = len(data)
    viewer = basic(callers.token({"team/*": ["viewer"]}))
    url = f"/v2/team/tool/blobs/{digest}"
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=10-": (10, size),
        "bytes=-7": (size - 7, size),
        f"bytes=5-{size + 100}": (5, size),
        f"bytes=-{size + 5}": (0, size),
    }
    for header, (start, end) in cases.items():
        answer = registry.get(url, headers={**viewer, "Range": header})
        assert answer.status_code == 206, (header, answer.text)
        assert answer.content == data[start:end], header
        assert answer.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert answer.headers["content-length"] == str(end - start)
        assert answer.headers["docker-content-digest"] == digest
    for ignored in ("bytes=0-1,5-6", "items=0-3", "bytes=9-2"):
        answer = registry.get(url, headers={**viewer, "Range": ignored})
        assert (answer.status_code, answer.content) == (200, data), ignored
    for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        answer = registry.get(url, headers={**viewer, "Range": unsatisfiable})
        assert answer.status_code == 416, unsatisfiable
        assert answer.headers["content-range"] == f"bytes */{size}"
        assert answer.headers[API_VERSION[0]] == API_VERSION[1]


def test_blobs_are_served_only_from_repositories_whose_images_list_them(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    mine = simple_image(api_context.storage, "mine")
    theirs = simple_image(api_context.storage, "theirs")
    environments.build("team", "tool", mine)
    environments.build("secret", "tool", theirs)
    viewer = basic(callers.token({"team/*": ["viewer"]}))
    assert registry.get(f"/v2/team/tool/blobs/{mine.layers[0]}", headers=viewer).status_code == 200
    # another repository's layer, asked for through a readable one
    answer = registry.get(f"/v2/team/tool/blobs/{theirs.layers[0]}", headers=viewer)
    assert "not part of any image of team/tool" in spec_error(answer, 404, "BLOB_UNKNOWN")
    assert answer.json()["errors"][0]["detail"] == {
        "name": "team/tool",
        "digest": theirs.layers[0],
    }
    head = registry.head(f"/v2/team/tool/blobs/{theirs.layers[0]}", headers=viewer)
    assert (head.status_code, head.content) == (404, b"")
    unknown = "sha256:" + "0" * 64
    spec_error(registry.get(f"/v2/team/tool/blobs/{unknown}", headers=viewer), 404, "BLOB_UNKNOWN")
    for bad in ("sha256:xyz", "md5", "latest"):
        answer = registry.get(f"/v2/team/tool/blobs/{bad}", headers=viewer)
        spec_error(answer, 400, "DIGEST_INVALID")
    # a new build's blobs are served at once, although the repository's blobs were just read
    newer = simple_image(api_context.storage, "newer")
    environments.build("team", "tool", newer)
    assert registry.get(f"/v2/team/tool/blobs/{newer.layers[1]}", headers=viewer).status_code == 200


def test_a_blob_gone_from_storage_is_unknown(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "vanishing")
    environments.build("team", "tool", image)
    api_context.storage.delete(blob_key(image.layers[0]))
    viewer = basic(callers.token({"team/*": ["viewer"]}))
    answer = registry.get(f"/v2/team/tool/blobs/{image.layers[0]}", headers=viewer)
    assert "missing from storage" in spec_error(answer, 404, "BLOB_UNKNOWN")


# --- tags and catalog ---------------------------------------------------------------------------


def test_tags_are_latest_and_build_ids_in_lexical_order_in_pages(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    ids = [
        environments.build("team", "tool", simple_image(api_context.storage, f"t{i}"))
        for i in range(3)
    ]
    environments.build("team", "tool", None, current=False)  # no image: no tag
    viewer = basic(callers.token({"team/tool": ["viewer"]}))
    expected = sorted([*map(str, ids), "latest"])
    answer = registry.get("/v2/team/tool/tags/list", headers=viewer)
    assert answer.status_code == 200
    assert answer.json() == {"name": "team/tool", "tags": expected}
    assert "link" not in answer.headers
    assert answer.headers[API_VERSION[0]] == API_VERSION[1]

    seen: list[str] = []
    url: str | None = "/v2/team/tool/tags/list?n=2"
    while url is not None:
        page = registry.get(url, headers=viewer)
        assert page.status_code == 200
        seen += page.json()["tags"]
        link = page.headers.get("link")
        url = None if link is None else link.split(";")[0].strip("<>")
        if link is not None:
            assert link.endswith('; rel="next"') and "n=2" in link
    assert seen == expected
    after = registry.get(f"/v2/team/tool/tags/list?last={expected[0]}", headers=viewer)
    assert after.json()["tags"] == expected[1:]
    assert registry.get("/v2/team/tool/tags/list?n=0", headers=viewer).json()["tags"] == []
    for bad in ("-1", "two", "1.5"):
        answer = registry.get(f"/v2/team/tool/tags/list?n={bad}", headers=viewer)
        spec_error(answer, 400, "PAGINATION_NUMBER_INVALID")

    environments.build("team", "empty", None)
    admin = basic(callers.token({"*/*": ["admin"]}))
    assert registry.get("/v2/team/empty/tags/list", headers=admin).json() == {
        "name": "team/empty",
        "tags": [],
    }
    spec_error(registry.get("/v2/team/none/tags/list", headers=admin), 404, "NAME_UNKNOWN")


def test_the_catalog_lists_the_environments_with_images_the_caller_may_read(
    registry: Client,
    callers: Callers,
    environments: Environments,
    api_context: ApiContext,
    db_sessions: sessionmaker[Session],
) -> None:
    image = simple_image(api_context.storage, "shared")  # one image, many repositories
    for namespace, name in [
        ("team", "tool"),
        ("team", "b"),
        ("team-b", "a"),  # '-' sorts before '/': "team-b/a" < "team/b"
        ("other", "x"),
        ("team", "gone"),
    ]:
        environments.build(namespace, name, image)
    environments.build("team", "plain", None)
    with db_sessions.begin() as session:
        delete_environment(session, "team", "gone")

    def catalog(headers: dict[str, str], query: str = "") -> httpx.Response:
        answer = registry.get(f"/v2/_catalog{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers[API_VERSION[0]] == API_VERSION[1]
        return answer

    admin = basic(callers.token({"*/*": ["admin"]}))
    everything = ["other/x", "team-b/a", "team/b", "team/tool"]
    assert catalog(admin).json() == {"repositories": everything}
    team = basic(callers.token({"team/*": ["viewer"], "other/y": ["viewer"]}))
    assert catalog(team).json() == {"repositories": ["team/b", "team/tool"]}
    one = basic(callers.token({"team/tool": ["viewer"]}))
    assert catalog(one).json() == {"repositories": ["team/tool"]}

    first = catalog(admin, "?n=3")
    assert first.json() == {"repositories": everything[:3]}
    assert first.headers["link"] == '</v2/_catalog?n=3&last=team%2Fb>; rel="next"'
    second = catalog(admin, "?n=3&last=team%2Fb")
    assert second.json() == {"repositories": ["team/tool"]}
    assert "link" not in second.headers
    assert catalog(admin, "?n=0").json() == {"repositories": []}
    spec_error(registry.get("/v2/_catalog?n=x", headers=admin), 400, "PAGINATION_NUMBER_INVALID")
    spec_error(registry.get("/v2/_catalog"), 401, "UNAUTHORIZED")
    spec_error(registry.get("/v2/_catalog", headers=EMPTY_BASIC), 401, "UNAUTHORIZED")


# --- who may pull -------------------------------------------------------------------------------


def test_reading_needs_environment_read_on_the_repository(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "private")
    environments.build("team", "tool", image)
    urls = [
        "/v2/team/tool/manifests/latest",
        f"/v2/team/tool/blobs/{image.layers[0]}",
        "/v2/team/tool/tags/list",
        # unknown names answer the same: nothing is revealed to those who may not read
        "/v2/team/unknown/manifests/latest",
    ]
    elsewhere = basic(callers.token({"other/*": ["admin"]}))
    for url in urls:
        assert "not granted" in spec_error(registry.get(url, headers=elsewhere), 403, "DENIED")
        spec_error(registry.get(url), 401, "UNAUTHORIZED")
        spec_error(registry.get(url, headers=EMPTY_BASIC), 401, "UNAUTHORIZED")
    head = registry.head(urls[0], headers=elsewhere)
    assert (head.status_code, head.content) == (403, b"")


class TestAnonymousPulls:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.AuthorizationBackend.unauthenticated_role_bindings = {'public/*': ['viewer']}"]

    def test_anonymous_callers_pull_what_unauthenticated_bindings_allow(
        self,
        registry: Client,
        callers: Callers,
        environments: Environments,
        api_context: ApiContext,
    ) -> None:
        public = simple_image(api_context.storage, "public")
        private = simple_image(api_context.storage, "private")
        environments.build("public", "tool", public)
        environments.build("team", "tool", private)
        # no credentials at all: the challenge, so that clients learn how to log in
        spec_error(registry.get("/v2/"), 401, "UNAUTHORIZED")
        # containers/image without credentials: anonymous, which may read something here
        assert registry.get("/v2/", headers=EMPTY_BASIC).json() == {}
        for headers in ({}, EMPTY_BASIC):  # docker without login sends nothing
            answer = registry.get("/v2/public/tool/manifests/latest", headers=headers)
            assert answer.status_code == 200
            assert answer.content == public.manifest_bytes
            blob = registry.get(f"/v2/public/tool/blobs/{public.layers[0]}", headers=headers)
            assert blob.content == public.blobs[public.layers[0]]
            denied = registry.get("/v2/team/tool/manifests/latest", headers=headers)
            spec_error(denied, 401, "UNAUTHORIZED")
            catalog = registry.get("/v2/_catalog", headers=headers | EMPTY_BASIC)
            assert catalog.json() == {"repositories": ["public/tool"]}
        viewer = basic(callers.token({"team/*": ["viewer"]}))
        assert registry.get("/v2/team/tool/manifests/latest", headers=viewer).status_code == 200


# --- pushes, and paths that are not the registry's ---------------------------------------------


def test_pushes_and_deletions_are_unsupported(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    image = simple_image(api_context.storage, "pushed")
    environments.build("team", "tool", image)
    admin = basic(callers.token({"*/*": ["admin"]}))
    attempts = [
        ("POST", "/v2/team/tool/blobs/uploads/"),
        ("PATCH", "/v2/team/tool/blobs/uploads/1234"),
        ("PUT", "/v2/team/tool/blobs/uploads/1234?digest=sha256:00"),
        ("PUT", "/v2/team/tool/manifests/latest"),
        ("DELETE", "/v2/team/tool/manifests/latest"),
        ("DELETE", f"/v2/team/tool/blobs/{image.layers[0]}"),
        ("POST", "/v2/team/tool/manifests/latest"),
    ]
    for method, url in attempts:
        answer = registry.request(method, url, headers=admin, content=b"{}")
        assert "takes no pushes" in spec_error(answer, 405, "UNSUPPORTED"), (method, url)
    assert registry.get("/v2/team/tool/manifests/latest", headers=admin).status_code == 200


def test_other_paths_keep_the_api_s_error_format_and_the_registry_stays_at_the_root(
    api_context: ApiContext, database: TestDatabase, callers: Callers
) -> None:
    settings = WebSettings(
        database_url=database.url, url_prefix="/kiln", enable_api=True, enable_registry=True
    )
    token = callers.token({"*/*": ["admin"]})
    with TestClient(create_app(settings, api=api_context)) as client:
        assert client.get("/v2/", headers=basic(token)).status_code == 200
        assert client.get("/kiln/v2/", headers=basic(token)).status_code == 404
        missing = client.get("/kiln/api/v1/nothing/")
        assert missing.status_code == 404 and missing.json()["status"] == "error"
        assert API_VERSION[0] not in missing.headers
        spec_error(client.get("/v2/nothing"), 404, "NAME_UNKNOWN")
    off = WebSettings(database_url=database.url, enable_api=True, enable_registry=False)
    with TestClient(create_app(off, api=api_context)) as client:
        answer = client.get("/v2/", headers=basic(token))
        assert answer.status_code == 404 and answer.json()["status"] == "error"


# --- the pull reference in the API ----------------------------------------------------------------


def test_the_api_shows_the_pull_reference_on_the_request_s_host(
    registry: Client, callers: Callers, environments: Environments, api_context: ApiContext
) -> None:
    build_id = environments.build("team", "tool", simple_image(api_context.storage, "ref"))
    answer = registry.get(f"/api/v1/build/{build_id}/docker/", headers=callers.admin)
    assert answer.status_code == 200
    assert answer.text == f"testserver.local/team/tool:{build_id}"
    other = registry.get(
        f"/api/v1/build/{build_id}/docker/", headers={**callers.admin, "Host": "kiln.lan:8080"}
    )
    assert other.text == f"kiln.lan:8080/team/tool:{build_id}"


class TestExternalRegistryUrl:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.CondaStoreServer.registry_external_url = 'images.example.org:5000'"]

    def test_the_api_shows_the_pull_reference_on_the_configured_host(
        self,
        registry: Client,
        callers: Callers,
        environments: Environments,
        api_context: ApiContext,
    ) -> None:
        build_id = environments.build("team", "tool", simple_image(api_context.storage, "ext"))
        answer = registry.get(f"/api/v1/build/{build_id}/docker/", headers=callers.admin)
        assert answer.text == f"images.example.org:5000/team/tool:{build_id}"
        without = environments.build("team", "tool", None)
        missing = registry.get(f"/api/v1/build/{without}/docker/", headers=callers.admin)
        assert missing.status_code == 404


# --- S3 storage ---------------------------------------------------------------------------------


@pytest.mark.s3
class TestS3Storage:
    @pytest.fixture
    def external(self, s3_bucket: S3Server) -> str:
        return "localhost:" + s3_bucket.endpoint.rsplit(":", 1)[1]

    @pytest.fixture
    def kiln_config_lines(self, s3_bucket: S3Server, external: str) -> list[str]:
        return [
            "c.CondaStore.storage_class = 'S3Storage'",
            f"c.S3Storage.internal_endpoint = {s3_bucket.endpoint!r}",
            f"c.S3Storage.external_endpoint = {external!r}",
            f"c.S3Storage.access_key = {s3_bucket.access_key!r}",
            f"c.S3Storage.secret_key = {s3_bucket.secret_key!r}",
            f"c.S3Storage.bucket_name = {s3_bucket.bucket!r}",
            f"c.S3Storage.region = {s3_bucket.region!r}",
            "c.S3Storage.secure = False",
        ]

    def test_blobs_redirect_to_presigned_urls_and_manifests_are_served_by_kiln(
        self,
        registry: Client,
        callers: Callers,
        environments: Environments,
        api_context: ApiContext,
        s3_bucket: S3Server,
        external: str,
    ) -> None:
        image = simple_image(api_context.storage, "s3")
        environments.build("team", "tool", image)
        viewer = basic(callers.token({"team/*": ["viewer"]}))
        manifest = registry.get("/v2/team/tool/manifests/latest", headers=viewer)
        assert manifest.status_code == 200 and manifest.content == image.manifest_bytes
        for digest, data in image.blobs.items():
            url = f"/v2/team/tool/blobs/{digest}"
            answer = registry.get(url, headers=viewer, follow_redirects=False)
            assert answer.status_code == 307, answer.text
            assert answer.headers[API_VERSION[0]] == API_VERSION[1]
            location = answer.headers["location"]
            parts = urlsplit(location)
            assert f"{parts.scheme}://{parts.netloc}" == f"http://{external}"
            assert parts.path == f"/{s3_bucket.bucket}/{blob_key(digest)}"
            assert parse_qs(parts.query)["X-Amz-Expires"] == ["600"]
            fetched = httpx.get(location, timeout=30)
            assert fetched.status_code == 200 and fetched.content == data
            ranged = httpx.get(location, headers={"Range": "bytes=0-3"}, timeout=30)
            assert ranged.status_code == 206 and ranged.content == data[:4]
            head = registry.head(url, headers=viewer)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(len(data))
        s3_bucket.client().remove_object(s3_bucket.bucket, blob_key(image.layers[0]))
        gone = registry.get(
            f"/v2/team/tool/blobs/{image.layers[0]}", headers=viewer, follow_redirects=False
        )
        spec_error(gone, 404, "BLOB_UNKNOWN")
        denied = registry.get(f"/v2/team/tool/blobs/{image.layers[1]}", follow_redirects=False)
        spec_error(denied, 401, "UNAUTHORIZED")

"""Downloading build artifacts through the REST API: streamed from local storage, redirected
to presigned URLs with S3 (a real SeaweedFS server), a log followed live while its build runs;
who may download, and what a missing artifact says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.auth.tokens import TokenClaims
from appliance.services.access import Caller
from appliance.services.artifacts import follow_log
from appliance.services.builds import fail_build, start_build
from appliance.services.transactions import AsyncTransactions
from appliance.storage.base import ArtifactKind, Storage
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import InProcessWorker, build_of
from tests.integration.test_api_builds import TOOL, UNSATISFIABLE, Builds

Client = TestClient[Litestar]

#: Path under /api/v1/build/{id}/, the artifact it serves and its file name for build 0.
BUILD_ROUTES = [
    ("logs/", ArtifactKind.LOGS, "build-{id}.log"),
    ("yaml/", ArtifactKind.YAML, "build-{id}.yaml"),
    ("lockfile/", ArtifactKind.LOCKFILE, "build-{id}.lock.yml"),
    ("conda-lock.yml", ArtifactKind.LOCKFILE, "conda-lock.yml"),
    ("conda-lock.yaml", ArtifactKind.LOCKFILE, "conda-lock.yaml"),
    ("archive/", ArtifactKind.CONDA_PACK, "build-{id}.tar.gz"),
]
ENVIRONMENT_ROUTES = [
    ("lockfile/", "team-tool.lock.yml"),
    ("conda-lock.yml", "conda-lock.yml"),
    ("conda-lock.yaml", "conda-lock.yaml"),
]


@pytest.fixture
def builds(
    db_sessions: sessionmaker[Session], api_context: ApiContext, database: TestDatabase
) -> Builds:
    return Builds(db_sessions, api_context, database)


def stored(
    api_context: ApiContext, sessions: sessionmaker[Session], build_id: int, kind: ArtifactKind
) -> bytes:
    """The artifact's bytes, read from storage directly."""
    return api_context.storage.get(kind.storage_key(build_of(sessions, build_id).build_key))


# --- local storage: Kiln streams the file -----------------------------------------------------


def test_every_artifact_of_a_completed_build_is_streamed_with_its_type_length_and_name(
    api: Client, callers: Callers, builds: Builds, api_context: ApiContext
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    viewer = callers.headers({"team/tool": ["viewer"]})
    for path, kind, filename in BUILD_ROUTES:
        response = api.get(f"/api/v1/build/{build_id}/{path}", headers=viewer)
        assert response.status_code == 200, (path, response.text)
        expected = stored(api_context, builds.sessions, build_id, kind)
        assert response.content == expected and expected, path
        assert response.headers["content-length"] == str(len(expected))
        assert response.headers["content-type"].startswith(kind.media_type.split(";")[0]), path
        disposition = "attachment" if kind == ArtifactKind.CONDA_PACK else "inline"
        assert response.headers["content-disposition"] == (
            f'{disposition}; filename="{filename.format(id=build_id)}"'
        )
    log = api.get(f"/api/v1/build/{build_id}/logs/", headers=viewer).text
    assert f"build {build_id} completed" in log
    lockfile = api.get(f"/api/v1/build/{build_id}/lockfile/", headers=viewer).text
    assert "kiln-demo-tool" in lockfile


def test_the_environment_lockfile_is_its_current_build_s(
    api: Client, callers: Callers, builds: Builds, api_context: ApiContext
) -> None:
    builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    current = builds.submit(TOOL, "tool", namespace="team", force=True)
    builds.run_queued()
    expected = stored(api_context, builds.sessions, current, ArtifactKind.LOCKFILE)
    viewer = callers.headers({"team/*": ["viewer"]})
    for path, filename in ENVIRONMENT_ROUTES:
        response = api.get(f"/api/v1/environment/team/tool/{path}", headers=viewer)
        assert response.status_code == 200, (path, response.text)
        assert response.content == expected
        assert response.headers["content-disposition"] == f'inline; filename="{filename}"'
    # The environment's own route is not shadowed by the lockfile routes.
    got = api.get("/api/v1/environment/team/tool/", headers=viewer)
    assert got.status_code == 200 and got.json()["data"]["current_build_id"] == current


def test_downloads_need_environment_read_on_the_build_s_environment(
    api: Client, callers: Callers, builds: Builds
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    outsider = callers.headers({"team/other": ["admin"], "elsewhere/*": ["admin"]})
    urls = [f"/api/v1/build/{build_id}/{path}" for path, _, _ in BUILD_ROUTES]
    urls += [f"/api/v1/build/{build_id}/{path}" for path in ("installer/", "docker/")]
    urls += [f"/api/v1/build/{build_id}/logs/?follow=true"]
    urls += [f"/api/v1/environment/team/tool/{path}" for path, _ in ENVIRONMENT_ROUTES]
    for url in urls:
        refused = api.get(url, headers=outsider)
        assert refused.status_code == 403, (url, refused.text)
        assert "environment::read on team/tool" in refused.json()["message"]
        anonymous = api.get(url)
        assert anonymous.status_code == 401, (url, anonymous.text)
        assert "location" not in anonymous.headers and b"kiln-demo" not in anonymous.content


def test_unknown_builds_and_environments_are_not_found(
    api: Client, callers: Callers, builds: Builds
) -> None:
    admin = callers.admin
    for path, _, _ in BUILD_ROUTES:
        response = api.get(f"/api/v1/build/424242/{path}", headers=admin)
        assert response.status_code == 404
        assert response.json()["message"] == "build 424242 does not exist"
        assert api.get(f"/api/v1/build/x1/{path}", headers=admin).status_code == 400
    missing = api.get("/api/v1/environment/team/nope/lockfile/", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["message"] == "environment team/nope does not exist"
    bad = api.get("/api/v1/environment/team/a..b/lockfile/", headers=admin)
    assert bad.status_code == 400 and "contains '..'" in bad.json()["message"]
    builds.submit(TOOL, "waiting", namespace="team")
    none_yet = api.get("/api/v1/environment/team/waiting/lockfile/", headers=admin)
    assert none_yet.status_code == 404
    assert none_yet.json()["message"] == (
        "environment team/waiting has no lockfile yet: none of its builds has completed"
    )


def test_a_missing_artifact_says_why(
    api: Client, callers: Callers, builds: Builds, api_context: ApiContext
) -> None:
    admin = callers.admin
    queued = builds.submit(TOOL, "tool")
    lockfile = api.get(f"/api/v1/build/{queued}/lockfile/", headers=admin)
    assert lockfile.status_code == 404
    assert lockfile.json() == {
        "status": "error",
        "code": "artifact_not_found",
        "message": f"build {queued} has no lockfile yet: the build is QUEUED, and the lockfile "
        "is made when it completes",
    }
    log = api.get(f"/api/v1/build/{queued}/logs/", headers=admin)
    assert log.status_code == 404
    assert "its log starts when a worker takes it; add ?follow=true" in log.json()["message"]

    failed = builds.submit(UNSATISFIABLE, "legacy")
    builds.run_queued()
    failed_log = api.get(f"/api/v1/build/{failed}/logs/", headers=admin)
    assert failed_log.status_code == 200 and "cannot be satisfied" in failed_log.text
    archive = api.get(f"/api/v1/build/{failed}/archive/", headers=admin)
    assert archive.status_code == 404
    assert archive.json()["message"].startswith(
        f"build {failed} has no conda-pack archive: the build failed (linux-64: the "
    )

    built = queued  # completed now
    key = ArtifactKind.YAML.storage_key(build_of(builds.sessions, built).build_key)
    api_context.storage.delete(key)
    gone = api.get(f"/api/v1/build/{built}/yaml/", headers=admin)
    assert gone.status_code == 404
    assert gone.json()["message"] == (
        f"build {built} has no pinned YAML: the file {key} is missing from artifact storage "
        "(removed outside Kiln?); rebuild to make it again"
    )

    installer = api.get(f"/api/v1/build/{built}/installer/", headers=admin)
    assert installer.status_code == 404
    assert "Kiln does not build constructor installers" in installer.json()["message"]
    docker = api.get(f"/api/v1/build/{failed}/docker/", headers=admin)  # failed: no image
    assert docker.status_code == 404
    assert docker.json()["message"].startswith("no image for this build")


def test_a_deleted_build_keeps_only_the_kinds_kept_on_deletion(
    api: Client, callers: Callers, builds: Builds
) -> None:
    old = builds.submit(TOOL, "tool")
    builds.run_queued()
    builds.submit(TOOL, "tool", force=True)
    builds.run_queued()
    admin = callers.admin
    assert api.delete(f"/api/v1/build/{old}/", headers=admin).status_code == 200
    builds.run_queued()  # the deletion job
    archive = api.get(f"/api/v1/build/{old}/archive/", headers=admin)
    assert archive.status_code == 404
    assert archive.json()["message"] == (
        f"build {old} has no conda-pack archive: it was removed when the build was deleted "
        "(CondaStore.build_artifacts_kept_on_deletion lists the kinds that are kept)"
    )
    assert api.get(f"/api/v1/build/{old}/lockfile/", headers=admin).status_code == 200
    assert api.get(f"/api/v1/build/{old}/logs/", headers=admin).status_code == 200


# --- following a log ----------------------------------------------------------------------------


def test_a_followed_log_waits_for_the_build_and_ends_with_it(
    api: Client,
    callers: Callers,
    builds: Builds,
    api_context: ApiContext,
    database: TestDatabase,
) -> None:
    build_id = builds.submit(TOOL, "tool")
    with InProcessWorker(database, api_context.build_settings, api_context.storage):
        response = api.get(f"/api/v1/build/{build_id}/logs/?follow=true", headers=callers.admin)
    assert response.status_code == 200, response.text
    assert build_of(builds.sessions, build_id).status == "COMPLETED"
    assert response.content == stored(api_context, builds.sessions, build_id, ArtifactKind.LOGS)
    assert response.text.rstrip().endswith(f"build {build_id} completed")
    assert response.headers["content-type"].startswith("text/plain")
    assert "content-length" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    # Following a build that has ended is an ordinary download.
    again = api.get(f"/api/v1/build/{build_id}/logs/?follow=true", headers=callers.admin)
    assert again.content == response.content
    assert again.headers["content-length"] == str(len(response.content))


def admin_caller(api_context: ApiContext) -> Caller:
    claims = TokenClaims(
        role_bindings={"*/*": ("admin",)}, expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    return Caller(api_context.policy, claims, predefined=True)


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await asyncio.wait_for(anext(chunks), timeout=10)


def follow_while_writing(
    storage: Storage,
    database: TestDatabase,
    sessions: sessionmaker[Session],
    api_context: ApiContext,
    build_id: int,
) -> None:
    """Follow the log of BUILDING ``build_id`` while lines are written and the build fails."""
    key = ArtifactKind.LOGS.storage_key(build_of(sessions, build_id).build_key)

    def end_build() -> None:
        with sessions.begin() as session:
            fail_build(session, build_id, "boom")

    async def follow() -> None:
        db = AsyncTransactions(database.url)
        try:
            download = await follow_log(db, storage, admin_caller(api_context), build_id, poll=0.05)
            assert download.content is not None and download.size is None and download.url is None
            chunks = download.content
            await asyncio.to_thread(storage.append, key, b"solving\n")
            assert await _next(chunks) == b"solving\n"  # while the build still runs
            await asyncio.to_thread(storage.append, key, b"installing\n")
            assert await _next(chunks) == b"installing\n"
            await asyncio.to_thread(storage.append, key, b"failed: boom\n")
            await asyncio.to_thread(end_build)
            rest = [chunk async for chunk in chunks]
            assert b"".join(rest) == b"failed: boom\n"
        finally:
            await db.close()

    asyncio.run(follow())


def start(sessions: sessionmaker[Session], build_id: int) -> None:
    with sessions.begin() as session:
        assert start_build(session, build_id, worker_name="test", platform="linux-64")


def test_a_followed_log_is_sent_as_it_is_written(
    builds: Builds, api_context: ApiContext, database: TestDatabase
) -> None:
    build_id = builds.submit(TOOL, "tool")
    start(builds.sessions, build_id)
    follow_while_writing(api_context.storage, database, builds.sessions, api_context, build_id)


def test_following_a_log_stops_after_the_time_limit(
    builds: Builds, api_context: ApiContext, database: TestDatabase
) -> None:
    build_id = builds.submit(TOOL, "tool")
    start(builds.sessions, build_id)
    key = ArtifactKind.LOGS.storage_key(build_of(builds.sessions, build_id).build_key)
    api_context.storage.put(key, b"started\n")

    async def follow() -> bytes:
        db = AsyncTransactions(database.url)
        try:
            download = await follow_log(
                db, api_context.storage, admin_caller(api_context), build_id, poll=0.05, limit=0.3
            )
            assert download.content is not None
            return b"".join([chunk async for chunk in download.content])
        finally:
            await db.close()

    assert asyncio.run(asyncio.wait_for(follow(), 10)) == b"started\n"


# --- S3 storage: a redirect to a presigned URL ------------------------------------------------


def s3_lines(server: S3Server, *, external: str) -> list[str]:
    return [
        "c.CondaStore.storage_class = 'S3Storage'",
        f"c.S3Storage.internal_endpoint = {server.endpoint!r}",
        f"c.S3Storage.external_endpoint = {external!r}",
        f"c.S3Storage.access_key = {server.access_key!r}",
        f"c.S3Storage.secret_key = {server.secret_key!r}",
        f"c.S3Storage.bucket_name = {server.bucket!r}",
        f"c.S3Storage.region = {server.region!r}",
        "c.S3Storage.secure = False",
    ]


@pytest.mark.s3
class TestS3Storage:
    @pytest.fixture
    def external(self, s3_bucket: S3Server) -> str:
        """The endpoint clients see: another name for the same server."""
        return "localhost:" + s3_bucket.endpoint.rsplit(":", 1)[1]

    @pytest.fixture
    def kiln_config_lines(self, s3_bucket: S3Server, external: str) -> list[str]:
        return s3_lines(s3_bucket, external=external)

    def test_downloads_redirect_to_short_lived_presigned_urls_on_the_external_endpoint(
        self,
        api: Client,
        callers: Callers,
        builds: Builds,
        api_context: ApiContext,
        s3_bucket: S3Server,
        external: str,
    ) -> None:
        build_id = builds.submit(TOOL, "tool", namespace="team")
        builds.run_queued()
        viewer = callers.headers({"team/*": ["viewer"]})
        urls = [(f"/api/v1/build/{build_id}/{path}", kind) for path, kind, _ in BUILD_ROUTES]
        urls += [
            (f"/api/v1/environment/team/tool/{path}", ArtifactKind.LOCKFILE)
            for path, _ in ENVIRONMENT_ROUTES
        ]
        for url, kind in urls:
            response = api.get(url, headers=viewer, follow_redirects=False)
            assert response.status_code == 307, (url, response.text)
            location = response.headers["location"]
            parts = urlsplit(location)
            assert f"{parts.scheme}://{parts.netloc}" == f"http://{external}"
            assert parts.path.startswith(f"/{s3_bucket.bucket}/")
            query = parse_qs(parts.query)
            assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]
            downloaded = httpx.get(location, timeout=30)
            assert downloaded.status_code == 200, downloaded.text
            assert downloaded.content == stored(api_context, builds.sessions, build_id, kind)
            tampered = location.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
            assert httpx.get(tampered, timeout=30).status_code == 403
        assert api.get(urls[0][0], follow_redirects=False).status_code == 401

    def test_a_missing_object_is_reported_before_redirecting(
        self, api: Client, callers: Callers, builds: Builds, s3_bucket: S3Server
    ) -> None:
        build_id = builds.submit(TOOL, "tool")
        builds.run_queued()
        key = ArtifactKind.CONDA_PACK.storage_key(build_of(builds.sessions, build_id).build_key)
        s3_bucket.client().remove_object(s3_bucket.bucket, key)
        response = api.get(
            f"/api/v1/build/{build_id}/archive/", headers=callers.admin, follow_redirects=False
        )
        assert response.status_code == 404
        assert f"the file {key} is missing from artifact storage" in response.json()["message"]

    def test_a_followed_log_is_streamed_by_kiln(
        self, builds: Builds, api_context: ApiContext, database: TestDatabase
    ) -> None:
        build_id = builds.submit(TOOL, "tool")
        start(builds.sessions, build_id)
        follow_while_writing(api_context.storage, database, builds.sessions, api_context, build_id)


class TestLocalStorageWithAStorageUrl:
    @pytest.fixture
    def kiln_config_lines(self) -> list[str]:
        return ["c.LocalStorage.storage_url = 'https://files.example.org/kiln/'"]

    def test_downloads_redirect_to_the_operator_s_file_server(
        self, api: Client, callers: Callers, builds: Builds
    ) -> None:
        build_id = builds.submit(TOOL, "tool")
        builds.run_queued()
        build_key = build_of(builds.sessions, build_id).build_key
        response = api.get(
            f"/api/v1/build/{build_id}/lockfile/", headers=callers.admin, follow_redirects=False
        )
        assert response.status_code == 307
        assert response.headers["location"] == (
            f"https://files.example.org/kiln/lockfile/{build_key}.yml"
        )


def test_reading_a_log_while_another_thread_appends_never_sends_a_torn_length(
    api: Client, callers: Callers, builds: Builds, api_context: ApiContext
) -> None:
    """A log read (without follow) while it grows is a consistent prefix of the final log."""
    build_id = builds.submit(TOOL, "tool")
    start(builds.sessions, build_id)
    key = ArtifactKind.LOGS.storage_key(build_of(builds.sessions, build_id).build_key)
    api_context.storage.put(key, b"")
    stop = threading.Event()

    def write() -> None:
        line = 0
        while not stop.is_set():
            api_context.storage.append(key, f"line {line}\n".encode())
            line += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(20):
            response = api.get(f"/api/v1/build/{build_id}/logs/", headers=callers.admin)
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(response.content))
            lines = response.text.split("\n")[:-1]  # the last one may still be written
            assert lines == [f"line {n}" for n in range(len(lines))]
    finally:
        stop.set()
        writer.join()

"""OCI images of builds through the real worker and database: recorded as the OCI_IMAGE artifact,
the same lockfile giving the same image, runnable once unpacked by umoci, built on imported base
images, and their blobs garbage-collected when builds are deleted (local storage and S3)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from appliance.builder.settings import BuildSettings
from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import BuildArtifact
from appliance.oci.export import export_layout
from appliance.oci.layout import blob_key, digest_of_key
from appliance.oci.store import manifest_blobs, read_json_blob
from appliance.queue.tasks import COLLECT_IMAGE_BLOBS
from appliance.schemas.specification import parse_specification
from appliance.services.builds import defer_job, delete_build, submit_specification
from appliance.storage import LocalArtifactStore, S3ArtifactStore, Storage
from appliance.worker.settings import UpkeepSettings
from tests.fixtures import worker
from tests.fixtures.postgres import TestDatabase
from tests.fixtures.s3 import S3Server
from tests.fixtures.worker import build_of, drain
from tests.unit.test_oci_build import tiny_layout

REPOSITORY = Path(__file__).resolve().parents[2]
TOOL = "name: demo\ndependencies:\n  - kiln-demo-tool\n"
TOOL_AND_PLUGIN = "name: demo\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-plugin\n"


def image_key(sessions: sessionmaker[Session], build_id: int) -> str | None:
    with sessions() as session:
        return session.scalar(
            select(BuildArtifact.key).where(
                BuildArtifact.build_id == build_id,
                BuildArtifact.artifact_type == BuildArtifactType.OCI_IMAGE,
            )
        )


def built(
    database: TestDatabase,
    sessions: sessionmaker[Session],
    settings: BuildSettings,
    storage: Storage,
    spec: str,
) -> tuple[int, str]:
    """Submit ``spec`` (forced), run the worker; the build id and its image's manifest digest."""
    build_id = worker.submit(sessions, settings, spec, force=True)
    drain(database, settings, storage)
    row = build_of(sessions, build_id)
    assert row.status == BuildStatus.COMPLETED, row.status_info
    key = image_key(sessions, build_id)
    assert key is not None
    return build_id, digest_of_key(key)


def test_a_build_records_its_image(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    build_id, digest = built(database, db_sessions, build_settings, local_storage, TOOL)
    manifest = read_json_blob(local_storage, digest)
    for blob in manifest_blobs(local_storage, digest):
        assert local_storage.exists(blob_key(blob))
    config = read_json_blob(local_storage, manifest["config"]["digest"])
    assert config["config"]["Labels"]["kiln.environment"] == "demo"
    log = local_storage.get(f"logs/{build_of(db_sessions, build_id).build_key}.log").decode()
    assert "--- image ---" in log and f"image {digest}" in log


def test_two_builds_of_the_same_lockfile_give_the_same_image(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    solved, _ = built(database, db_sessions, build_settings, local_storage, TOOL)
    lockfile = local_storage.get(f"lockfile/{build_of(db_sessions, solved).build_key}.yml")
    ids_and_digests = []
    for _ in range(2):
        build_id = _submit_lockfile(db_sessions, build_settings, lockfile)
        drain(database, build_settings, local_storage)
        assert build_of(db_sessions, build_id).status == BuildStatus.COMPLETED
        key = image_key(db_sessions, build_id)
        assert key is not None
        ids_and_digests.append((build_id, key))
    (first_id, first_key), (second_id, second_key) = ids_and_digests
    assert first_id != second_id
    assert first_key == second_key


def _submit_lockfile(
    sessions: sessionmaker[Session], settings: BuildSettings, lockfile: bytes
) -> int:
    """Submit the lockfile as the specification of environment ``pinned`` (forced rebuild)."""
    with sessions.begin() as session:
        return submit_specification(
            session,
            namespace="default",
            specification=parse_specification(lockfile, name="pinned"),
            settings=settings,
            force=True,
        ).build_id


@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci (Debian package)")
def test_the_unpacked_image_runs_the_environment(
    tmp_path: Path,
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    _, digest = built(database, db_sessions, build_settings, local_storage, TOOL)
    layout = export_layout(local_storage, digest, tmp_path / "layout", tag="latest")
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    tool = bundle / "rootfs" / "opt" / "conda" / "envs" / "demo" / "bin" / "kiln-demo-tool"
    ran = subprocess.run([str(tool)], capture_output=True, text=True, timeout=30, check=True)
    assert ran.stdout.strip() == "/opt/conda/envs/demo"
    runtime = json.loads((bundle / "config.json").read_text())
    assert "CONDA_PREFIX=/opt/conda/envs/demo" in runtime["process"]["env"]


def test_kiln_image_import_then_build_on_that_base(
    tmp_path: Path,
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    base_digest = tiny_layout(tmp_path / "layout")
    config = tmp_path / "kiln_config.py"
    config.write_text(f"c.LocalStorage.storage_path = {str(local_storage.storage_path)!r}\n")
    imported = subprocess.run(
        [sys.executable, "-m", "appliance", "image", "import", str(tmp_path / "layout"),
         "--reference", "tiny:1.0", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120, cwd=REPOSITORY,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert f"Imported tiny:1.0 ({base_digest})" in imported.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "appliance", "image", "list", "--config", str(config),
         "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120, cwd=REPOSITORY,
    )  # fmt: skip
    assert listed.stdout.split() == ["tiny:1.0", base_digest], listed.stderr
    settings = dataclasses.replace(
        build_settings, image=dataclasses.replace(build_settings.image, base_image="tiny:1.0")
    )
    _, digest = built(database, db_sessions, settings, local_storage, TOOL)
    manifest = read_json_blob(local_storage, digest)
    base = read_json_blob(local_storage, base_digest)
    assert manifest["layers"][0] == base["layers"][0]
    missing = dataclasses.replace(
        build_settings, image=dataclasses.replace(build_settings.image, base_image="debian:12")
    )
    build_id = worker.submit(db_sessions, missing, TOOL, force=True)
    drain(database, missing, local_storage)
    failed = build_of(db_sessions, build_id)
    assert failed.status == BuildStatus.FAILED
    assert "kiln image import FILE --reference debian:12" in (failed.status_info or "")


def _collect_on_delete(
    database: TestDatabase,
    sessions: sessionmaker[Session],
    settings: BuildSettings,
    storage: Storage,
) -> None:
    """Two builds of one environment with packages in common; delete the older: its own blobs
    go, the shared ones and the current image stay whole."""
    settings = dataclasses.replace(
        settings, image=dataclasses.replace(settings.image, blob_grace_seconds=0.0)
    )
    old, old_digest = built(database, sessions, settings, storage, TOOL_AND_PLUGIN)
    _, current_digest = built(database, sessions, settings, storage, TOOL)
    old_blobs = manifest_blobs(storage, old_digest)
    current_blobs = manifest_blobs(storage, current_digest)
    shared = old_blobs & current_blobs
    assert len(shared) == 3  # the layers of kiln-demo-tool, -lib and -data

    with sessions.begin() as session:
        delete_build(session, old)
    drain(database, settings, storage)

    assert image_key(sessions, old) is None
    for digest in current_blobs:
        assert storage.exists(blob_key(digest)), digest
    for digest in old_blobs - shared:
        assert not storage.exists(blob_key(digest)), digest
    remaining = {digest_of_key(key) for key in storage.keys("oci/blobs/")}
    assert remaining == current_blobs


def test_deleting_a_build_collects_the_blobs_only_it_used(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    _collect_on_delete(database, db_sessions, build_settings, local_storage)


@pytest.mark.s3
def test_collection_works_on_s3(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    s3_bucket: S3Server,
) -> None:
    storage = S3ArtifactStore(
        internal_endpoint=s3_bucket.endpoint,
        access_key=s3_bucket.access_key,
        secret_key=s3_bucket.secret_key,
        region=s3_bucket.region,
        bucket_name=s3_bucket.bucket,
        secure=False,
    )
    _collect_on_delete(database, db_sessions, build_settings, storage)


def test_a_deleted_build_that_keeps_its_image_keeps_its_blobs(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    settings = dataclasses.replace(
        build_settings, image=dataclasses.replace(build_settings.image, blob_grace_seconds=0.0)
    )
    old, old_digest = built(database, db_sessions, settings, local_storage, TOOL_AND_PLUGIN)
    built(database, db_sessions, settings, local_storage, TOOL)
    with db_sessions.begin() as session:
        delete_build(session, old)
    upkeep = UpkeepSettings(kept_on_deletion=frozenset({"LOGS", "OCI_IMAGE"}))
    drain(database, settings, local_storage, upkeep=upkeep)
    assert image_key(db_sessions, old) == blob_key(old_digest)
    for digest in manifest_blobs(local_storage, old_digest):
        assert local_storage.exists(blob_key(digest))


def test_the_periodic_collection_removes_blobs_left_behind(
    database: TestDatabase,
    db_sessions: sessionmaker[Session],
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
) -> None:
    """A blob nothing refers to (an interrupted upload, or one still within its grace period
    when its build was deleted) goes at the next periodic collection; images stay whole."""
    settings = dataclasses.replace(
        build_settings, image=dataclasses.replace(build_settings.image, blob_grace_seconds=0.0)
    )
    _, digest = built(database, db_sessions, settings, local_storage, TOOL)
    orphan = "sha256:" + "0" * 64
    local_storage.put(blob_key(orphan), b"left behind")
    with db_sessions.begin() as session:
        defer_job(session, COLLECT_IMAGE_BLOBS, {"timestamp": 0}, lock=None)
    drain(database, settings, local_storage)
    assert not local_storage.exists(blob_key(orphan))
    for blob in manifest_blobs(local_storage, digest):
        assert local_storage.exists(blob_key(blob))

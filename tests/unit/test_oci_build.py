"""Images made by the build engine on the demo channel: reproducible byte for byte, layers shared
between environments with common packages, base images imported from files, unused blobs
collected."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.builder.pipeline import Builder, BuildRequest, BuildResult
from appliance.builder.settings import OCI_IMAGE, BuildSettings
from appliance.builder.solve import repodata_gateway
from appliance.common.errors import ArtifactNotFound, BuildError
from appliance.oci.collect import collect_garbage, live_blobs
from appliance.oci.errors import InvalidImage
from appliance.oci.importer import import_image
from appliance.oci.layout import (
    CONFIG,
    LAYER_GZIP,
    MANIFEST,
    blob_key,
    canonical_json,
    descriptor,
    digest_of_bytes,
    digest_of_key,
    layout_blob_path,
)
from appliance.oci.store import manifest_blobs, read_json_blob, references
from appliance.oci.tarball import LayerWriter
from appliance.schemas.specification import parse_specification
from appliance.storage import ArtifactKind, LocalArtifactStore, Storage

TOOL = "name: demo\ndependencies:\n  - kiln-demo-tool\nvariables:\n  GREETING: hi\n"
TOOL_AND_PLUGIN = "name: demo\ndependencies:\n  - kiln-demo-tool\n  - kiln-demo-plugin\n"


def fresh_builder(root: Path, demo_channel: Path, **image: object) -> Builder:
    """A builder in its own data dir: own store, package cache and storage."""
    settings = BuildSettings(
        store_directory=root / "store",
        package_cache=root / "pkgs",
        repodata_cache=root / "cache",
        allowed_channels=(str(demo_channel),),
        default_channels=(str(demo_channel),),
    )
    if image:
        settings = dataclasses.replace(settings, image=dataclasses.replace(settings.image, **image))
    storage = LocalArtifactStore(root / "storage")
    return Builder(settings, storage, repodata_gateway(settings.repodata_cache))


def build(builder: Builder, text: str, build_id: int = 1, name: str | None = None) -> BuildResult:
    request = BuildRequest("default", parse_specification(text, name=name), build_id)
    return asyncio.run(builder.build(request))


def image_of(builder: Builder, result: BuildResult) -> tuple[str, dict[str, bytes]]:
    """The manifest digest of the build's image and every blob of it, by digest."""
    digest = digest_of_key(result.artifacts[OCI_IMAGE])
    blobs = {d: builder.storage.get(blob_key(d)) for d in manifest_blobs(builder.storage, digest)}
    return digest, blobs


def test_the_same_lockfile_gives_byte_identical_images(tmp_path: Path, demo_channel: Path) -> None:
    first = fresh_builder(tmp_path / "solve", demo_channel)
    solved = build(first, TOOL)
    lockfile = first.storage.get(ArtifactKind.LOCKFILE.storage_key(solved.build_key)).decode()

    images = []
    for number, place in enumerate(("one", "two")):
        builder = fresh_builder(tmp_path / place, demo_channel)
        result = build(builder, lockfile, build_id=10 + number, name="demo")
        images.append(image_of(builder, result))
    (digest_one, blobs_one), (digest_two, blobs_two) = images
    assert digest_one == digest_two
    assert blobs_one == blobs_two
    assert all(digest_of_bytes(data) == digest for digest, data in blobs_one.items())
    # The solved build's package layers are the same too (its own layer differs: its records
    # come from the solver, not the lockfile, and it sets a variable).
    solved_manifest = read_json_blob(first.storage, digest_of_key(solved.artifacts[OCI_IMAGE]))
    locked_manifest = json.loads(blobs_one[digest_one])
    assert solved_manifest["layers"][:-1] == locked_manifest["layers"][:-1]


def test_the_image_describes_the_environment(builder: Builder) -> None:
    result = build(builder, TOOL, build_id=7)
    digest, blobs = image_of(builder, result)
    manifest = json.loads(blobs[digest])
    assert manifest["mediaType"] == MANIFEST
    assert manifest["config"]["mediaType"] == CONFIG
    assert {layer["mediaType"] for layer in manifest["layers"]} == {LAYER_GZIP}
    # kiln-demo-tool, -lib, -data, and the environment's own layer.
    assert len(manifest["layers"]) == 4
    config = json.loads(blobs[manifest["config"]["digest"]])
    env = config["config"]["Env"]
    assert env[0].startswith("PATH=/opt/conda/envs/demo/bin:")
    assert "CONDA_PREFIX=/opt/conda/envs/demo" in env and "GREETING=hi" in env
    labels = config["config"]["Labels"]
    lockfile = builder.storage.get(ArtifactKind.LOCKFILE.storage_key(result.build_key))
    assert labels == {
        "kiln.namespace": "default",
        "kiln.environment": "demo",
        "kiln.lockfile.sha256": digest_of_bytes(lockfile).removeprefix("sha256:"),
    }
    assert "Cmd" not in config["config"]  # no python or shell in the environment, no base
    assert [h["created_by"] for h in config["history"]] == [
        "kiln: conda package kiln-demo-data 1.0.0 h5bd7814_0",
        f"kiln: conda package {_title(result, 'kiln-demo-lib')}",
        f"kiln: conda package {_title(result, 'kiln-demo-tool')}",
        "kiln: environment default/demo",
    ]
    log = builder.storage.get(ArtifactKind.LOGS.storage_key(result.build_key)).decode()
    assert "[image] 4 layers for 3 packages" in log
    assert f"image {digest}" in log


def _title(result: BuildResult, name: str) -> str:
    (package,) = [p for p in result.packages if p.name == name]
    return f"{package.name} {package.version} {package.build}"


def test_environments_with_common_packages_share_layers(builder: Builder) -> None:
    first = build(builder, TOOL, build_id=1)
    second = build(builder, TOOL_AND_PLUGIN, build_id=2)
    layers = [
        {
            layer["digest"]
            for layer in read_json_blob(builder.storage, image_of(builder, r)[0])["layers"]
        }
        for r in (first, second)
    ]
    shared = layers[0] & layers[1]
    assert len(shared) == 3  # tool, lib, data; not the environment layers
    assert len(layers[1] - layers[0]) == 2  # the plugin's layer and the environment layer


def test_the_build_label_is_optional(tmp_path: Path, demo_channel: Path) -> None:
    builder = fresh_builder(tmp_path, demo_channel, build_label=True)
    result = build(builder, TOOL, build_id=31)
    digest, blobs = image_of(builder, result)
    config = json.loads(blobs[json.loads(blobs[digest])["config"]["digest"]])
    assert config["config"]["Labels"]["kiln.build"] == "31"


def test_the_image_prefix_is_configurable(tmp_path: Path, demo_channel: Path) -> None:
    builder = fresh_builder(tmp_path, demo_channel, prefix="/srv/{namespace}/{name}")
    result = build(builder, TOOL)
    digest, blobs = image_of(builder, result)
    config = json.loads(blobs[json.loads(blobs[digest])["config"]["digest"]])
    assert "CONDA_PREFIX=/srv/default/demo" in config["config"]["Env"]
    assert any(b"srv/default/demo/bin/kiln-demo-tool" in _tar(data) for data in blobs.values())


def _tar(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else b""


# -- base images ----------------------------------------------------------------------------------


def tiny_layout(directory: Path, *, name: str = "1.0") -> str:
    """An OCI image layout with one small layer (etc/os-release); returns its manifest digest."""
    (directory / "blobs" / "sha256").mkdir(parents=True)
    with LayerWriter(directory / "layer") as writer:
        writer.add_directory("etc")
        writer.add_bytes("etc/os-release", b"NAME=tiny\n")
    layer = writer.finish()
    (directory / "layer").rename(layout_blob_path(directory, layer.digest))
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created_by": "tiny"}],
        }
    )
    layout_blob_path(directory, digest_of_bytes(config)).write_bytes(config)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": descriptor(CONFIG, digest_of_bytes(config), len(config)),
            "layers": [descriptor(LAYER_GZIP, layer.digest, layer.size)],
        }
    )
    digest = digest_of_bytes(manifest)
    layout_blob_path(directory, digest).write_bytes(manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = descriptor(
        MANIFEST, digest, len(manifest), annotations={"org.opencontainers.image.ref.name": name}
    )
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return digest


def test_builds_go_on_an_imported_base_image(tmp_path: Path, demo_channel: Path) -> None:
    base_digest = tiny_layout(tmp_path / "layout")
    builder = fresh_builder(tmp_path / "data", demo_channel, base_image="tiny:1.0")
    imported = import_image(builder.storage, tmp_path / "layout", reference="tiny:1.0")
    assert imported.manifest_digest == base_digest
    result = build(builder, TOOL)
    digest, blobs = image_of(builder, result)
    manifest = json.loads(blobs[digest])
    base = read_json_blob(builder.storage, base_digest)
    assert manifest["layers"][0] == base["layers"][0]
    assert len(manifest["layers"]) == 5
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == "tiny:1.0"
    config = json.loads(blobs[manifest["config"]["digest"]])
    assert config["config"]["Env"][:2] == [
        "PATH=/opt/conda/envs/demo/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
    ]
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert config["history"][0] == {"created_by": "tiny"}


def test_a_missing_base_image_fails_the_build_saying_how_to_import_it(
    tmp_path: Path, demo_channel: Path
) -> None:
    builder = fresh_builder(tmp_path, demo_channel, base_image="debian:bookworm-slim")
    with pytest.raises(
        BuildError, match=r"kiln image import FILE --reference debian:bookworm-slim"
    ):
        build(builder, TOOL)
    assert not list((tmp_path / "store" / "default").glob("*-demo"))  # no prefix left behind


def test_import_checks_what_it_stores(tmp_path: Path) -> None:
    storage = LocalArtifactStore(tmp_path / "storage")
    digest = tiny_layout(tmp_path / "layout")
    with pytest.raises(InvalidImage, match="give one with --reference"):
        import_image(storage, tmp_path / "layout")  # "1.0" alone is not a name
    (layer,) = read_layout_manifest(tmp_path / "layout", digest)["layers"]
    layout_blob_path(tmp_path / "layout", layer["digest"]).write_bytes(b"damaged")
    with pytest.raises(InvalidImage, match="does not match its digest"):
        import_image(storage, tmp_path / "layout", reference="tiny:1.0")
    assert references(storage) == {}
    with pytest.raises(InvalidImage, match="neither an OCI image layout"):
        import_image(storage, tmp_path)


def read_layout_manifest(layout: Path, digest: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(layout_blob_path(layout, digest).read_bytes())
    return data


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo (Debian package)")
def test_import_archives_made_by_skopeo(tmp_path: Path) -> None:
    digest = tiny_layout(tmp_path / "layout")
    docker_archive = tmp_path / "docker.tar"
    oci_archive = tmp_path / "oci.tar"
    for target in (f"docker-archive:{docker_archive}:tiny/base:2.0", f"oci-archive:{oci_archive}"):
        subprocess.run(
            ["skopeo", "copy", "--quiet", f"oci:{tmp_path / 'layout'}:1.0", target],
            check=True,
            capture_output=True,
            timeout=60,
        )
    storage = LocalArtifactStore(tmp_path / "storage")
    from_docker = import_image(storage, docker_archive)
    assert from_docker.reference == "tiny/base:2.0"  # the name recorded in the archive
    assert from_docker.layers == 1
    from_oci = import_image(storage, oci_archive, reference="docker.io/library/tiny:oci")
    assert from_oci.reference == "tiny:oci"
    assert from_oci.manifest_digest == digest
    # Recompressed with the same fixed gzip settings, the docker-archive layer is the same blob.
    assert from_docker.manifest_digest == digest
    assert references(storage) == {"tiny/base:2.0": digest, "tiny:oci": digest}


# -- garbage collection ----------------------------------------------------------------------------


def test_garbage_collection_keeps_shared_and_recent_blobs(
    tmp_path: Path, demo_channel: Path
) -> None:
    layout_digest = tiny_layout(tmp_path / "layout")
    builder = fresh_builder(tmp_path / "data", demo_channel)
    storage: Storage = builder.storage
    import_image(storage, tmp_path / "layout", reference="tiny:1.0")
    kept = digest_of_key(build(builder, TOOL, build_id=1).artifacts[OCI_IMAGE])
    dropped = digest_of_key(build(builder, TOOL_AND_PLUGIN, build_id=2).artifacts[OCI_IMAGE])
    kept_blobs = manifest_blobs(storage, kept)
    dropped_only = manifest_blobs(storage, dropped) - kept_blobs
    assert len(dropped_only) == 4  # manifest, config, plugin layer, environment layer

    young = collect_garbage(storage, [kept], grace=timedelta(hours=1))
    assert young.removed == [] and young.young == 4

    later = datetime.now(UTC) + timedelta(hours=2)
    result = collect_garbage(storage, [kept], grace=timedelta(hours=1), now=later)
    assert sorted(result.removed) == sorted(dropped_only)
    for digest in kept_blobs | manifest_blobs(storage, layout_digest):
        assert storage.exists(blob_key(digest)), digest
    for digest in dropped_only:
        assert not storage.exists(blob_key(digest))
    assert live_blobs(storage, [kept]) == kept_blobs | manifest_blobs(storage, layout_digest)


def test_a_build_refreshes_old_blobs_it_reuses(tmp_path: Path, demo_channel: Path) -> None:
    builder = fresh_builder(tmp_path, demo_channel, blob_grace_seconds=60.0)
    first = digest_of_key(build(builder, TOOL, build_id=1).artifacts[OCI_IMAGE])
    storage = builder.storage
    assert isinstance(storage, LocalArtifactStore)
    old = datetime.now(UTC) - timedelta(hours=3)
    for digest in manifest_blobs(storage, first):
        os.utime(storage.path_of(blob_key(digest)), (old.timestamp(), old.timestamp()))
    second = digest_of_key(build(builder, TOOL_AND_PLUGIN, build_id=2).artifacts[OCI_IMAGE])
    shared = manifest_blobs(storage, first) & manifest_blobs(storage, second)
    assert len(shared) == 3
    for digest in shared:  # reused by the second build: refreshed, safe from collection
        assert storage.modified(blob_key(digest)) > old + timedelta(hours=2)
    for digest in manifest_blobs(storage, first) - shared:
        assert storage.modified(blob_key(digest)) < old + timedelta(minutes=1)


def test_collection_ignores_what_is_not_a_blob(tmp_path: Path) -> None:
    storage = LocalArtifactStore(tmp_path / "storage")
    storage.put("oci/blobs/sha256/not-a-digest", b"x")
    storage.put("logs/1.log", b"x")
    result = collect_garbage(storage, [], grace=timedelta(0), now=datetime.now(UTC) + timedelta(1))
    assert result.removed == []
    with pytest.raises(ArtifactNotFound):
        storage.get(blob_key("sha256:" + "0" * 64))

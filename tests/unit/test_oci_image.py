"""The image config and manifest (Env, Cmd, labels, history, diff_ids, base layers first) and
the storage layout shared with the registry (blob keys, references)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.oci.image import (
    EPOCH,
    BaseImage,
    BuiltLayer,
    ImageDescription,
    image_config,
    image_manifest,
    serialise,
)
from appliance.oci.layout import (
    CONFIG,
    DOCKER_LAYER_GZIP,
    LAYER_GZIP,
    MANIFEST,
    InvalidDigest,
    blob_key,
    digest_of_bytes,
    digest_of_key,
    normalize_reference,
    reference_document,
    reference_key,
)
from appliance.oci.tarball import LayerBlob

DIGEST = "sha256:" + "a" * 64


def layer(number: int) -> BuiltLayer:
    return BuiltLayer(
        blob=LayerBlob(
            path=Path(f"/nowhere/{number}"),
            digest="sha256:" + f"{number:x}" * 64,
            size=100 + number,
            diff_id="sha256:" + f"{number + 5:x}" * 64,
            tar_size=1024,
        ),
        description=f"conda package p{number} 1.0 0",
    )


def description(**changes: object) -> ImageDescription:
    values: dict[str, object] = {
        "namespace": "team",
        "environment": "demo",
        "prefix": "/opt/conda/envs/demo",
        "platform": "linux-64",
        "lockfile_sha256": "b" * 64,
        "variables": {"OMP_NUM_THREADS": "1"},
    }
    values.update(changes)
    return ImageDescription(**values)  # type: ignore[arg-type]


DEBIAN = BaseImage(
    reference="debian:bookworm-slim",
    manifest_digest=DIGEST,
    config={
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["bash"],
            "WorkingDir": "/srv",
            "Labels": {"vendor": "debian"},
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "c" * 64]},
        "history": [{"created_by": "debuerreotype"}],
    },
    layers=({"mediaType": DOCKER_LAYER_GZIP, "digest": "sha256:" + "d" * 64, "size": 29_000},),
)


def test_scratch_config() -> None:
    config = image_config(BaseImage(), description(programs=frozenset({"python"})), [layer(1)])
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["created"] == EPOCH
    env = config["config"]["Env"]
    assert env[0] == (
        "PATH=/opt/conda/envs/demo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    assert "CONDA_PREFIX=/opt/conda/envs/demo" in env
    assert env[-1] == "OMP_NUM_THREADS=1"
    assert config["config"]["Cmd"] == ["/opt/conda/envs/demo/bin/python"]
    assert "Entrypoint" not in config["config"]
    assert config["config"]["Labels"] == {
        "kiln.namespace": "team",
        "kiln.environment": "demo",
        "kiln.lockfile.sha256": "b" * 64,
    }
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer(1).blob.diff_id]}
    assert config["history"] == [
        {"created": EPOCH, "created_by": "kiln: conda package p1 1.0 0", "comment": "kiln"}
    ]


@pytest.mark.parametrize(
    ("programs", "command"),
    [
        ({"bash", "sh"}, ["/opt/conda/envs/demo/bin/bash"]),
        ({"sh"}, ["/opt/conda/envs/demo/bin/sh"]),
        (set(), None),
    ],
)
def test_command_without_a_base(programs: set[str], command: list[str] | None) -> None:
    config = image_config(BaseImage(), description(programs=frozenset(programs)), [layer(1)])
    assert config["config"].get("Cmd") == command


def test_the_build_label_is_only_there_when_asked_for() -> None:
    assert "kiln.build" not in image_config(BaseImage(), description(), [])["config"]["Labels"]
    labels = image_config(BaseImage(), description(build_id=42), [])["config"]["Labels"]
    assert labels["kiln.build"] == "42"


def test_a_base_image_comes_first_and_its_settings_are_merged() -> None:
    layers = [layer(1), layer(2)]
    config = image_config(DEBIAN, description(programs=frozenset({"python"})), layers)
    container = config["config"]
    assert container["Env"][:2] == [
        "PATH=/opt/conda/envs/demo/bin:/usr/local/bin:/usr/bin:/bin",
        "LANG=C.UTF-8",
    ]
    assert container["Cmd"] == ["bash"]  # the base's shell, with the environment on PATH
    assert container["WorkingDir"] == "/srv"
    assert container["Labels"]["vendor"] == "debian"
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "c" * 64] + [
        item.blob.diff_id for item in layers
    ]
    assert config["history"][0] == {"created_by": "debuerreotype"}
    assert len(config["history"]) == 3

    config_bytes = serialise(config)
    manifest = image_manifest(DEBIAN, config_bytes, layers)
    assert manifest["mediaType"] == MANIFEST and manifest["schemaVersion"] == 2
    assert manifest["config"] == {
        "mediaType": CONFIG,
        "digest": digest_of_bytes(config_bytes),
        "size": len(config_bytes),
    }
    assert [item["digest"] for item in manifest["layers"]] == [
        "sha256:" + "d" * 64,
        layers[0].blob.digest,
        layers[1].blob.digest,
    ]
    assert {item["mediaType"] for item in manifest["layers"]} == {LAYER_GZIP}
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == DIGEST


def test_serialisation_is_canonical() -> None:
    config = image_config(BaseImage(), description(), [layer(1)])
    data = serialise(config)
    assert data == serialise(json.loads(data))
    assert data == json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def test_blob_keys_and_digests_round_trip() -> None:
    assert blob_key(DIGEST) == "oci/blobs/sha256/" + "a" * 64
    assert digest_of_key(blob_key(DIGEST)) == DIGEST
    for bad in ("sha256:abc", "md5:" + "a" * 32, "SHA256:" + "a" * 64):
        with pytest.raises(InvalidDigest):
            blob_key(bad)
    for key in ("oci/blobs/sha256/xyz", "logs/1.log", "oci/blobs/sha256/" + "A" * 64):
        with pytest.raises(InvalidDigest):
            digest_of_key(key)


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("debian", "debian:latest"),
        ("debian:bookworm-slim", "debian:bookworm-slim"),
        ("docker.io/library/debian:12", "debian:12"),
        ("quay.io/org/image", "quay.io/org/image:latest"),
        ("localhost:5000/base", "localhost:5000/base:latest"),
        ("registry.example.com:5000/base:1.0", "registry.example.com:5000/base:1.0"),
        ("scratch", "scratch"),
    ],
)
def test_references_are_normalised(written: str, normal: str) -> None:
    assert normalize_reference(written) == normal


def test_reference_documents() -> None:
    assert reference_key("docker.io/library/debian:12") == "oci/refs/debian_12.json"
    assert reference_key("quay.io/org/x:1") == "oci/refs/quay.io_org_x_1.json"
    assert json.loads(reference_document("debian:12", DIGEST)) == {
        "reference": "debian:12",
        "manifest": DIGEST,
    }
    for bad in ("", "a b", "/abs", "x:", "../up"):
        with pytest.raises(ValueError):
            normalize_reference(bad)

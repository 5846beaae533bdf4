"""``kiln image import``: bringing a base image into Kiln's storage without a registry.

Air-gapped sites carry images in as files, made elsewhere with ``skopeo copy docker://...
oci-archive:FILE`` / ``oci:DIR`` or ``docker save``. Accepted:

- an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``), or a tar of one
  (``oci-archive``; ``docker save`` of Docker 25 and later writes one too);
- a docker-archive tarball (``docker save`` before Docker 25, ``skopeo copy ...
  docker-archive:FILE``): ``manifest.json``, a config file and uncompressed layer tars. Layers
  are compressed with Kiln's fixed gzip settings and an OCI manifest is written for them.

Only one platform is imported: from a multi-platform index, the entry for this host's platform.
Every blob's digest is checked before it is stored. The image is then named by a reference
document (:func:`appliance.oci.layout.reference_key`); importing again under the same name
replaces it (blobs of the old image are collected when nothing else uses them).
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from appliance.config.platforms import current_platform
from appliance.oci.errors import InvalidImage
from appliance.oci.image import ARCHITECTURES
from appliance.oci.layout import (
    CONFIG,
    INDEX_TYPES,
    LAYER_GZIP,
    MANIFEST,
    MANIFEST_TYPES,
    SCRATCH,
    InvalidDigest,
    canonical_json,
    check_digest,
    descriptor,
    digest_of_bytes,
    layout_blob_path,
    normalize_reference,
    reference_document,
    reference_key,
)
from appliance.oci.store import publish
from appliance.oci.tarball import gzip_file, sha256_of_stream
from appliance.storage.base import Storage

_REF_NAME = "org.opencontainers.image.ref.name"
_IMAGE_NAME = "io.containerd.image.name"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ImportedImage:
    """What was imported."""

    reference: str
    manifest_digest: str
    layers: int
    #: Compressed bytes of the image's layers.
    size: int
    uploaded: int


def import_image(
    storage: Storage, source: Path, *, reference: str | None = None, platform: str | None = None
) -> ImportedImage:
    """Import the image in ``source`` (directory or tarball, see the module docstring) under
    ``reference`` (default: the name recorded in the file). Raises :class:`InvalidImage`
    saying what is wrong with the file."""
    wanted = _normalized(reference) if reference else None
    platform = platform or current_platform()
    if not source.exists():
        raise InvalidImage(f"{source} does not exist")
    with tempfile.TemporaryDirectory(prefix="kiln-import-") as scratch:
        directory = source if source.is_dir() else _extract(source, Path(scratch) / "image")
        work = Path(scratch) / "work"
        work.mkdir()
        if (directory / "index.json").is_file():
            name, blobs, manifest = _from_layout(directory, wanted, platform)
        elif (directory / "manifest.json").is_file():
            name, blobs, manifest = _from_docker_archive(directory, wanted, work)
        else:
            raise InvalidImage(
                f"{source} is neither an OCI image layout (index.json) nor a docker-archive "
                "(manifest.json)"
            )
        final = wanted or name
        if final is None:
            raise InvalidImage(
                f"{source} does not record a name for its image: give one with --reference NAME:TAG"
            )
        manifest_digest = digest_of_bytes(manifest)
        published = publish(
            storage, [*blobs, (manifest_digest, manifest)], refresh_after=timedelta.max
        )
        storage.put(reference_key(final), reference_document(final, manifest_digest))
    layers = json.loads(manifest).get("layers") or []
    return ImportedImage(
        reference=final,
        manifest_digest=manifest_digest,
        layers=len(layers),
        size=sum(int(layer.get("size", 0)) for layer in layers),
        uploaded=published.uploaded,
    )


def _normalized(reference: str) -> str:
    try:
        name = normalize_reference(reference)
    except ValueError as error:
        raise InvalidImage(str(error)) from error
    if name == SCRATCH:
        raise InvalidImage("'scratch' means no base image; it cannot be imported")
    return name


def _extract(archive: Path, target: Path) -> Path:
    """Unpack a tarball (any compression) with tarfile's safe "data" filter."""
    try:
        with tarfile.open(archive, "r:*") as bundle:
            bundle.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise InvalidImage(f"{archive} is not a readable tarball: {error}") from error
    return target


# -- OCI image layout ---------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidImage(f"{what} cannot be read: {error}") from error
    if not isinstance(document, dict):
        raise InvalidImage(f"{what} is not a JSON object")
    return document


def _verified_blob(layout: Path, item: Mapping[str, Any]) -> tuple[str, Path]:
    try:
        digest = check_digest(str(item.get("digest")))
    except InvalidDigest as error:
        raise InvalidImage(f"unsupported digest in the image: {error}") from error
    path = layout_blob_path(layout, digest)
    try:
        with path.open("rb") as handle:
            actual, size = sha256_of_stream(handle)
    except OSError as error:
        raise InvalidImage(f"blob {digest} is missing from the image layout") from error
    if actual != digest or ("size" in item and int(item["size"]) != size):
        raise InvalidImage(f"blob {digest} does not match its digest or size: the file is damaged")
    return digest, path


def _platform_matches(entry: Mapping[str, Any], platform: str) -> bool:
    wanted, variant = ARCHITECTURES.get(platform, ("amd64", None))
    described = entry.get("platform") or {}
    return (
        described.get("os", "linux") == "linux"
        and described.get("architecture", wanted) == wanted
        and (variant is None or described.get("variant") in (None, variant))
    )


def _name_of(entry: Mapping[str, Any]) -> str | None:
    annotations = entry.get("annotations") or {}
    for key in (_IMAGE_NAME, _REF_NAME):
        value = annotations.get(key)
        if value and (":" in value or "/" in value) and not value.startswith(":"):
            try:
                return normalize_reference(str(value))
            except ValueError:
                continue
    return None


def _choose(
    entries: list[dict[str, Any]], wanted: str | None, platform: str, what: str
) -> dict[str, Any]:
    if not entries:
        raise InvalidImage(f"{what} lists no image")
    if wanted is not None and len(entries) > 1:
        tag = wanted.rsplit(":", 1)[-1]
        named = [
            e
            for e in entries
            if _name_of(e) == wanted or (e.get("annotations") or {}).get(_REF_NAME) == tag
        ]
        if named:
            entries = named
    if len(entries) > 1:
        matching = [e for e in entries if _platform_matches(e, platform)]
        entries = matching or entries
    if len(entries) > 1:
        names = sorted(
            str((e.get("annotations") or {}).get(_REF_NAME) or e.get("digest")) for e in entries
        )
        raise InvalidImage(
            f"{what} holds {len(entries)} images ({', '.join(names)}): choose one with "
            "--reference NAME:TAG"
        )
    return entries[0]


def _from_layout(
    layout: Path, wanted: str | None, platform: str
) -> tuple[str | None, list[tuple[str, Path]], bytes]:
    index = _read_json(layout / "index.json", "index.json")
    entry = _choose(list(index.get("manifests") or []), wanted, platform, "index.json")
    name = _name_of(entry)
    for _ in range(4):  # nested indexes
        digest, path = _verified_blob(layout, entry)
        document = _read_json(path, f"manifest {digest}")
        media_type = document.get("mediaType") or entry.get("mediaType")
        if media_type in INDEX_TYPES or "manifests" in document:
            choices = [e for e in document.get("manifests") or [] if _platform_matches(e, platform)]
            entry = _choose(choices, None, platform, f"index {digest} for {platform}")
            continue
        if media_type not in MANIFEST_TYPES and "layers" not in document:
            raise InvalidImage(f"manifest {digest} has unsupported media type {media_type!r}")
        blobs = [_verified_blob(layout, document.get("config") or {})]
        blobs += [_verified_blob(layout, layer) for layer in document.get("layers") or []]
        return name, blobs, path.read_bytes()
    raise InvalidImage("the image's indexes nest too deeply")


# -- docker-archive -------------------------------------------------------------------------------


def _from_docker_archive(
    directory: Path, wanted: str | None, work: Path
) -> tuple[str | None, list[tuple[str, Path]], bytes]:
    try:
        entries = json.loads((directory / "manifest.json").read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidImage(f"manifest.json cannot be read: {error}") from error
    if not isinstance(entries, list) or not entries:
        raise InvalidImage("manifest.json lists no image")
    if wanted is not None and len(entries) > 1:
        named = [e for e in entries if wanted in {_safe(t) for t in e.get("RepoTags") or []}]
        entries = named or entries
    if len(entries) > 1:
        tags = sorted(t for e in entries for t in e.get("RepoTags") or [])
        raise InvalidImage(
            f"the archive holds {len(entries)} images ({', '.join(tags)}): choose one with "
            "--reference NAME:TAG"
        )
    entry = entries[0]
    tags = [t for t in (_safe(tag) for tag in entry.get("RepoTags") or []) if t]
    config_path = _inside(directory, str(entry.get("Config", "")))
    config_bytes = config_path.read_bytes()
    config = _read_json(config_path, "the image config")
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layer_paths = [_inside(directory, str(name)) for name in entry.get("Layers") or []]
    if len(layer_paths) != len(diff_ids):
        raise InvalidImage(
            f"the archive lists {len(layer_paths)} layers but its config {len(diff_ids)}"
        )
    blobs: list[tuple[str, Path]] = [(digest_of_bytes(config_bytes), config_path)]
    layers = []
    for number, (path, diff_id) in enumerate(zip(layer_paths, diff_ids, strict=True)):
        with path.open("rb") as handle:
            compressed = handle.read(2) == _GZIP_MAGIC
        if compressed:
            with path.open("rb") as handle:
                digest, size = sha256_of_stream(handle)
            blobs.append((digest, path))
            layers.append(descriptor(LAYER_GZIP, digest, size))
            continue
        blob = gzip_file(path, work / f"layer-{number:03d}.tar.gz")
        if blob.diff_id != diff_id:
            raise InvalidImage(
                f"layer {path.name} does not match the config's diff_id {diff_id}: the archive "
                "is damaged"
            )
        blobs.append((blob.digest, blob.path))
        layers.append(descriptor(LAYER_GZIP, blob.digest, blob.size))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(CONFIG, digest_of_bytes(config_bytes), len(config_bytes)),
        "layers": layers,
    }
    return (tags[0] if tags else None), blobs, canonical_json(manifest)


def _safe(tag: str) -> str | None:
    try:
        return normalize_reference(tag)
    except ValueError:
        return None


def _inside(directory: Path, name: str) -> Path:
    path = (directory / name).resolve()
    if not name or not path.is_relative_to(directory.resolve()) or not path.is_file():
        raise InvalidImage(f"the archive's manifest.json names a missing file {name!r}")
    return path

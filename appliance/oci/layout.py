"""Where image data lives in Kiln's storage, and the OCI names and digests that describe it.

The contract between the image builder (:mod:`appliance.oci`) and the registry
(:mod:`appliance.registry`):

- every blob (layer, config and the image manifest itself) is stored content-addressed at
  ``oci/blobs/sha256/<64 hex digits>`` (:func:`blob_key`); the bytes under a key never change;
- a build's image is the BuildArtifact of type ``OCI_IMAGE`` whose key is the storage key of
  its manifest blob (so :func:`digest_of_key` of the artifact's key is the manifest digest);
- an imported base image is named by a reference (``debian:bookworm-slim``); the small JSON
  document at :func:`reference_key` maps it to its manifest digest:
  ``{"reference": "debian:bookworm-slim", "manifest": "sha256:..."}``.

Built images are single-platform OCI image manifests (:data:`MANIFEST`) with an OCI config
(:data:`CONFIG`) and gzip layers (:data:`LAYER_GZIP`). Imported images may carry Docker's
equivalent media types; :data:`MANIFEST_TYPES` and :data:`INDEX_TYPES` list what is understood.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Storage key prefix of every blob; a blob's key is this plus its hex digest.
BLOB_PREFIX = "oci/blobs/sha256/"
#: Storage key prefix of the reference documents of imported images.
REFS_PREFIX = "oci/refs/"

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: Media types of single-image manifests (OCI and Docker schema 2).
MANIFEST_TYPES = frozenset({MANIFEST, DOCKER_MANIFEST})
#: Media types of multi-platform indexes (OCI and Docker manifest lists).
INDEX_TYPES = frozenset({INDEX, DOCKER_LIST})
#: Docker layer and config media types, and the OCI type a built image lists them under.
DOCKER_TO_OCI: Mapping[str, str] = {
    DOCKER_LAYER_GZIP: LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": LAYER_TAR,
    DOCKER_CONFIG: CONFIG,
}

#: The base image name meaning "no base": the image holds only the environment.
SCRATCH = "scratch"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
_CHUNK = 1 << 20


class InvalidDigest(ValueError):
    """A string is not a ``sha256:<64 hex digits>`` digest (or a key is not a blob key)."""


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:`` followed by 64 lowercase hex digits."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidDigest(f"{digest!r} is not a sha256 digest (sha256:<64 hex digits>)")
    return digest


def blob_key(digest: str) -> str:
    """The storage key of the blob with ``digest`` (``sha256:<hex>``)."""
    return BLOB_PREFIX + check_digest(digest).removeprefix("sha256:")


def digest_of_key(key: str) -> str:
    """The digest (``sha256:<hex>``) of the blob stored at ``key``; the inverse of
    :func:`blob_key`. Raises :class:`InvalidDigest` for any other key."""
    hexdigest = key.removeprefix(BLOB_PREFIX) if key.startswith(BLOB_PREFIX) else ""
    if not _HEX.match(hexdigest):
        raise InvalidDigest(f"{key!r} is not the storage key of a blob ({BLOB_PREFIX}<hex>)")
    return "sha256:" + hexdigest


def digest_of_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of_file(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def canonical_json(document: Any) -> bytes:
    """The bytes Kiln writes for a JSON document: keys sorted, no spaces, UTF-8. The same
    document always gives the same bytes, hence the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    """An OCI content descriptor (``mediaType``, ``digest``, ``size`` and any extra fields)."""
    return {"mediaType": media_type, "digest": check_digest(digest), "size": size, **extra}


def normalize_reference(reference: str) -> str:
    """The canonical form of an image reference, as imported images are stored under.

    Docker Hub's implicit names are dropped (``docker.io/library/debian:12`` is ``debian:12``),
    and a reference without a tag gets ``:latest``. ``scratch`` stays ``scratch``. Raises
    ``ValueError`` for something that is not a reference.
    """
    value = reference.strip()
    if not value or not _REFERENCE.match(value) or "//" in value or value.endswith(("/", ":")):
        raise ValueError(f"{reference!r} is not an image reference such as 'debian:bookworm-slim'")
    if value == SCRATCH:
        return value
    for registry in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if value.startswith(registry):
            value = value.removeprefix(registry)
            break
    value = value.removeprefix("library/")
    name, _, digest = value.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        value = f"{name}:latest"
    return value


def reference_key(reference: str) -> str:
    """Storage key of the document that maps ``reference`` (normalized) to its manifest:
    ``oci/refs/<reference with '/', ':' and '@' replaced by '_'>.json``."""
    name = normalize_reference(reference)
    return REFS_PREFIX + re.sub(r"[/:@]", "_", name) + ".json"


def reference_document(reference: str, manifest_digest: str) -> bytes:
    """The bytes stored at :func:`reference_key` for ``reference``."""
    return canonical_json(
        {"reference": normalize_reference(reference), "manifest": check_digest(manifest_digest)}
    )


def layout_blob_path(layout: Path, digest: str) -> Path:
    """Where an OCI image layout directory keeps the blob ``digest``."""
    algorithm, _, hexdigest = check_digest(digest).partition(":")
    return layout / "blobs" / algorithm / hexdigest

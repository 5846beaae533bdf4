"""Images in storage: reading manifests and references, and publishing blobs.

Blobs are immutable and content-addressed (:mod:`appliance.oci.layout`). Publishing uploads
only blobs that are missing; a blob that exists but is older than half the garbage collection
grace period is touched (:meth:`~appliance.storage.base.Storage.touch`), so collection, which
spares blobs modified within the grace period, cannot remove a blob this build reuses before
the build is recorded (see :mod:`appliance.oci.collect`). The manifest goes last: a manifest
in storage always has all its blobs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.common.errors import ArtifactNotFound
from appliance.oci.errors import BaseImageNotFound, ImageError
from appliance.oci.image import ARCHITECTURES, BaseImage
from appliance.oci.layout import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    SCRATCH,
    blob_key,
    check_digest,
    normalize_reference,
    reference_key,
)
from appliance.storage.base import Storage

logger = logging.getLogger("kiln.oci")


def read_json_blob(storage: Storage, digest: str) -> dict[str, Any]:
    """The JSON document stored as blob ``digest`` (a manifest, index or config)."""
    document = json.loads(storage.get(blob_key(digest)))
    if not isinstance(document, dict):
        raise ValueError(f"blob {digest} is not a JSON object")
    return document


def resolve_reference(storage: Storage, reference: str) -> str | None:
    """The manifest digest ``reference`` was imported as, or None when it was not."""
    try:
        document = json.loads(storage.get(reference_key(reference)))
    except ArtifactNotFound:
        return None
    return check_digest(str(document["manifest"]))


def references(storage: Storage) -> dict[str, str]:
    """Every imported reference and its manifest digest."""
    found: dict[str, str] = {}
    for key in storage.keys("oci/refs/"):
        if not key.endswith(".json"):
            continue
        try:
            document = json.loads(storage.get(key))
            found[str(document["reference"])] = check_digest(str(document["manifest"]))
        except (ArtifactNotFound, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable image reference document %s", key)
    return found


def load_base_image(storage: Storage, reference: str, platform: str) -> BaseImage:
    """The base image named ``reference`` (``scratch`` or an imported image), for ``platform``.

    Raises :class:`BaseImageNotFound` naming ``kiln image import`` when it was not imported,
    and :class:`ImageError` when its architecture is not the environment's.
    """
    try:
        name = normalize_reference(reference)
    except ValueError as error:
        raise ImageError(
            f"CondaStore.default_docker_base_image {reference!r} is not an image reference"
        ) from error
    if name == SCRATCH:
        return BaseImage()
    digest = resolve_reference(storage, name)
    if digest is None:
        raise BaseImageNotFound(
            f"the base image {name!r} (CondaStore.default_docker_base_image) has not been "
            f"imported: import it with `kiln image import FILE --reference {name}` (FILE an OCI "
            "layout or docker-archive tarball, e.g. from `skopeo copy` or `docker save`), or "
            "set the base image to 'scratch'"
        )
    try:
        manifest = read_json_blob(storage, digest)
        config = read_json_blob(storage, str(manifest["config"]["digest"]))
    except (ArtifactNotFound, ValueError, KeyError, TypeError) as error:
        raise ImageError(
            f"the imported base image {name!r} is incomplete in storage ({error}); import it "
            f"again with `kiln image import FILE --reference {name}`"
        ) from error
    architecture, _ = ARCHITECTURES.get(platform, ("amd64", None))
    if config.get("architecture") not in (None, architecture):
        raise ImageError(
            f"the base image {name!r} is for {config.get('architecture')}, but the environment "
            f"is for {platform} ({architecture}): import a {architecture} image"
        )
    layers = tuple(dict(layer) for layer in manifest.get("layers") or [])
    return BaseImage(reference=name, manifest_digest=digest, config=config, layers=layers)


def manifest_blobs(storage: Storage, digest: str) -> set[str]:
    """``digest`` and every blob it refers to (config and layers; for an index, its manifests
    and theirs). Blobs that cannot be read are skipped."""
    found = {digest}
    try:
        document = read_json_blob(storage, digest)
    except (ArtifactNotFound, ValueError):
        return found
    media_type = document.get("mediaType")
    if media_type in INDEX_TYPES or "manifests" in document:
        for child in document.get("manifests") or []:
            child_digest = str(child.get("digest", ""))
            if child_digest and child_digest not in found:
                found |= manifest_blobs(storage, child_digest)
        return found
    if media_type not in (None, *MANIFEST_TYPES):
        return found
    for item in [document.get("config") or {}, *(document.get("layers") or [])]:
        if isinstance(item, dict) and item.get("digest"):
            found.add(str(item["digest"]))
    return found


@dataclass
class Publication:
    """What publishing an image did, for the build log."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    reused: int = 0
    refreshed: int = 0
    digests: list[str] = field(default_factory=list)


def publish(
    storage: Storage,
    blobs: Sequence[tuple[str, Path | bytes]],
    *,
    refresh_after: timedelta,
    now: datetime | None = None,
) -> Publication:
    """Store each ``(digest, file or bytes)`` that is missing, the last one (the manifest)
    last. Existing blobs older than ``refresh_after`` are touched after the uploads, just before
    the manifest, so that the time between refreshing them and the build being recorded is as
    short as possible."""
    report = Publication()
    stale: list[str] = []
    for index, (digest, content) in enumerate(blobs):
        key = blob_key(digest)
        report.digests.append(digest)
        if index == len(blobs) - 1:
            for old in stale:  # right before the manifest
                storage.touch(old)
            report.refreshed, stale = len(stale), []
        try:
            modified = storage.modified(key)
        except ArtifactNotFound:
            modified = None
        if modified is not None:
            report.reused += 1
            if (now or datetime.now(UTC)) - modified >= refresh_after:
                stale.append(key)
            continue
        if isinstance(content, bytes):
            storage.put(key, content)
            report.uploaded_bytes += len(content)
        else:
            storage.put_file(key, content)
            report.uploaded_bytes += os.path.getsize(content)
        report.uploaded += 1
    for old in stale:
        storage.touch(old)
    report.refreshed += len(stale)
    return report

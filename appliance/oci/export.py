"""Writing a stored image out as an OCI image layout directory.

The layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) is what ``skopeo copy
oci:DIR:TAG ...`` and ``umoci unpack --image DIR:TAG`` read: a way to take an image out of
Kiln without the registry (air-gapped transfer, inspection, tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appliance.oci.layout import MANIFEST, blob_key, descriptor, layout_blob_path
from appliance.oci.store import manifest_blobs, read_json_blob
from appliance.storage.base import Storage

_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


def export_layout(storage: Storage, manifest_digest: str, directory: Path, *, tag: str) -> Path:
    """Write the image ``manifest_digest`` and its blobs into the OCI layout ``directory``
    (created if needed; an existing layout gains the image), tagged ``tag``. Returns
    ``directory``. Raises :class:`~appliance.common.errors.ArtifactNotFound` for a missing
    blob."""
    manifest = read_json_blob(storage, manifest_digest)
    for digest in sorted(manifest_blobs(storage, manifest_digest)):
        target = layout_blob_path(directory, digest)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as out:
            for chunk in storage.stream(blob_key(digest)):
                out.write(chunk)
        partial.replace(target)
    (directory / "oci-layout").write_text(json.dumps(_LAYOUT_VERSION))
    index_path = directory / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    entries = [
        entry
        for entry in index.get("manifests", [])
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    size = storage.size(blob_key(manifest_digest))
    entries.append(
        descriptor(
            str(manifest.get("mediaType", MANIFEST)),
            manifest_digest,
            size,
            annotations={"org.opencontainers.image.ref.name": tag},
        )
    )
    index["manifests"] = entries
    index_path.write_text(json.dumps(index, indent=2))
    return directory

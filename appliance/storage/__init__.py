"""Artifact storage: build logs, lockfiles, pinned YAML, conda-pack archives, image blobs.

:class:`Storage` is the contract; :class:`LocalArtifactStore` (a directory) and
:class:`S3ArtifactStore` (an S3 bucket) implement it. The traitlets classes ``LocalStorage`` and
``S3Storage`` in :mod:`appliance.config` carry the settings and build one of these.

:class:`S3ArtifactStore` is imported on first use: its S3 client library takes a fifth of a
second to import, which every process would pay whether or not it uses S3.
"""

from typing import Any

from appliance.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ArtifactKind,
    InvalidArtifactKey,
    Storage,
    StoredObject,
    media_type_for,
    validate_key,
)
from appliance.storage.local import LocalArtifactStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from appliance.storage.s3 import S3ArtifactStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ArtifactKind",
    "InvalidArtifactKey",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "Storage",
    "StoredObject",
    "media_type_for",
    "validate_key",
]


def __getattr__(name: str) -> Any:
    if name == "S3ArtifactStore":
        from appliance.storage.s3 import S3ArtifactStore

        return S3ArtifactStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

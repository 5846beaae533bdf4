"""Artifact storage: build logs, lockfiles, pinned YAML, conda-pack archives, image blobs.

:class:`Storage` is the contract; :class:`LocalArtifactStore` (a directory) and
:class:`S3ArtifactStore` (an S3 bucket) implement it. The traitlets classes ``LocalStorage`` and
``S3Storage`` in :mod:`appliance.config` carry the settings and build one of these.
"""

from appliance.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ArtifactKind,
    InvalidArtifactKey,
    Storage,
    media_type_for,
    validate_key,
)
from appliance.storage.local import LocalArtifactStore
from appliance.storage.s3 import S3ArtifactStore

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ArtifactKind",
    "InvalidArtifactKey",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "Storage",
    "media_type_for",
    "validate_key",
]

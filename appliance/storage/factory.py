"""Build the configured artifact store from its traitlets section."""

from __future__ import annotations

from pathlib import Path

from appliance.config.storage import LocalStorage, S3Storage
from appliance.config.storage import Storage as StorageSection
from appliance.storage.base import Storage
from appliance.storage.local import LocalArtifactStore


def open_storage(section: StorageSection) -> Storage:
    """The store that ``section`` (``config.storage``, a LocalStorage or S3Storage) describes.

    No I/O happens here; call :meth:`Storage.check` to find configuration problems early.
    """
    if isinstance(section, S3Storage):
        from appliance.storage.s3 import S3ArtifactStore  # the S3 client is slow to import

        return S3ArtifactStore(
            internal_endpoint=section.internal_endpoint,
            external_endpoint=section.external_endpoint or None,
            access_key=section.access_key or None,
            secret_key=section.secret_key or None,
            region=section.region,
            bucket_name=section.bucket_name,
            internal_secure=section.internal_secure,
            external_secure=section.external_secure,
            credentials=section.credentials,
            credentials_args=tuple(section.credentials_args),
            credentials_kwargs=dict(section.credentials_kwargs),
        )
    if isinstance(section, LocalStorage):
        return LocalArtifactStore(Path(section.storage_path), section.storage_url or None)
    raise TypeError(f"no artifact store for configuration class {type(section).__name__}")

"""Garbage collection of image blobs: remove what no image needs any more.

The roots are the manifests of every build's OCI_IMAGE artifact (the caller reads them from
the database) and of every imported base image (the reference documents in storage). A blob is
kept when a root refers to it (the manifest itself, its config, its layers), and removed
otherwise, unless it was modified within the grace period.

Why the grace period makes collection safe next to running builds: a build stores its blobs
before the build (and its OCI_IMAGE row) is recorded, so for a while its blobs are referred to
by nothing. Blobs it uploads are new, hence younger than the grace period. Blobs it reuses
because they already exist may be old: it touches those older than half the grace period
(:func:`appliance.oci.store.publish`), right before storing its manifest. Collection re-reads
each candidate's modification time just before removing it, so a build recorded within half the
grace period of publishing never loses a blob. The remaining window (a touch landing between
that re-read and the removal, microseconds) needs a blob that is older than the whole grace
period and referred to by no other image at that moment.

Removing is idempotent, and collection can run anywhere, any number of times, concurrently
with itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from appliance.common.errors import ArtifactNotFound
from appliance.oci.layout import BLOB_PREFIX, InvalidDigest, digest_of_key
from appliance.oci.store import manifest_blobs, references
from appliance.storage.base import Storage

logger = logging.getLogger("kiln.oci")


@dataclass
class GarbageCollection:
    """What a garbage collection found and did."""

    #: Digests of the blobs removed.
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    #: Blobs some image refers to.
    kept: int = 0
    #: Blobs nothing refers to, kept because they are younger than the grace period.
    young: int = 0

    def summary(self) -> str:
        return (
            f"removed {len(self.removed)} unreferenced image blobs "
            f"({self.removed_bytes / 1e6:.1f} MB); kept {self.kept} in use and {self.young} "
            "within the grace period"
        )


def live_blobs(storage: Storage, manifests: Iterable[str]) -> set[str]:
    """Every blob the manifests ``manifests`` and the imported images refer to."""
    roots = set(manifests) | set(references(storage).values())
    live: set[str] = set()
    for digest in sorted(roots):
        live |= manifest_blobs(storage, digest)
    return live


def collect_garbage(
    storage: Storage,
    manifests: Iterable[str],
    *,
    grace: timedelta,
    now: datetime | None = None,
) -> GarbageCollection:
    """Remove the blobs that neither ``manifests`` (digests of the builds' image manifests)
    nor an imported image refers to and that are older than ``grace``."""
    live = live_blobs(storage, manifests)
    result = GarbageCollection()
    for stored in storage.objects(BLOB_PREFIX):
        try:
            digest = digest_of_key(stored.key)
        except InvalidDigest:
            continue
        if digest in live:
            result.kept += 1
            continue
        if not _older_than(storage, stored.key, grace, now):
            result.young += 1
            continue
        storage.delete(stored.key)
        result.removed.append(digest)
        result.removed_bytes += stored.size
    if result.removed:
        logger.info("image garbage collection: %s", result.summary())
    return result


def _older_than(storage: Storage, key: str, grace: timedelta, now: datetime | None) -> bool:
    """Whether ``key`` was last modified more than ``grace`` ago, read now (not from the
    listing, which may be minutes old on a large store)."""
    try:
        modified = storage.modified(key)
    except ArtifactNotFound:
        return False
    return (now or datetime.now(UTC)) - modified > grace

"""What image garbage collection needs from every storage backend: listing keys under a prefix
with their times, and touching a key. Run against both backends (local files, real S3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.common.errors import ArtifactNotFound
from appliance.storage import InvalidArtifactKey, LocalArtifactStore, S3ArtifactStore, Storage
from tests.fixtures.s3 import S3Server


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalArtifactStore(tmp_path / "storage")
        return
    server: S3Server = request.getfixturevalue("s3_bucket")
    yield S3ArtifactStore(
        internal_endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
        bucket_name=server.bucket,
        secure=False,
    )


def test_objects_lists_keys_under_a_prefix_in_order_with_sizes(store: Storage) -> None:
    for key in ("oci/blobs/sha256/bb", "oci/blobs/sha256/aa", "oci/refs/x.json", "logs/1.log"):
        store.put(key, key.encode())
    listed = list(store.objects("oci/blobs/"))
    assert [o.key for o in listed] == ["oci/blobs/sha256/aa", "oci/blobs/sha256/bb"]
    assert [o.size for o in listed] == [len("oci/blobs/sha256/aa")] * 2
    now = datetime.now(UTC)
    assert all(abs(o.modified - now) < timedelta(minutes=1) for o in listed)
    assert list(store.keys("oci/")) == [
        "oci/blobs/sha256/aa",
        "oci/blobs/sha256/bb",
        "oci/refs/x.json",
    ]
    assert list(store.keys("oci/blobs/sha256/a")) == ["oci/blobs/sha256/aa"]
    assert "logs/1.log" in set(store.keys())
    assert list(store.keys("nothing/here/")) == []


def test_a_prefix_must_be_able_to_start_a_key(store: Storage) -> None:
    with pytest.raises(InvalidArtifactKey):
        list(store.objects("../etc/"))
    with pytest.raises(InvalidArtifactKey):
        list(store.objects("/oci/"))


def test_touch_renews_the_modification_time_and_keeps_the_bytes(store: Storage) -> None:
    store.put("oci/blobs/sha256/cc", b"layer bytes")
    before = store.modified("oci/blobs/sha256/cc")
    time.sleep(1.1)  # S3 times have a resolution of one second
    store.touch("oci/blobs/sha256/cc")
    after = store.modified("oci/blobs/sha256/cc")
    assert after > before
    assert store.get("oci/blobs/sha256/cc") == b"layer bytes"
    (listed,) = store.objects("oci/blobs/sha256/cc")
    assert listed.modified == after or abs(listed.modified - after) < timedelta(seconds=1)


def test_touching_or_dating_a_missing_key_says_it_is_missing(store: Storage) -> None:
    with pytest.raises(ArtifactNotFound):
        store.touch("oci/blobs/sha256/missing")
    with pytest.raises(ArtifactNotFound):
        store.modified("oci/blobs/sha256/missing")


def test_local_listing_skips_writes_in_progress(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "storage")
    store.put("oci/blobs/sha256/dd", b"x")
    (tmp_path / "storage" / "oci" / "blobs" / "sha256" / ".ee.123.tmp").write_bytes(b"partial")
    assert list(store.keys("oci/")) == ["oci/blobs/sha256/dd"]

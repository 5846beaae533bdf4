"""LocalArtifactStore: artifacts as files under the storage directory."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from appliance.common.errors import ArtifactNotFound, StorageError
from appliance.storage import (
    ArtifactKind,
    InvalidArtifactKey,
    LocalArtifactStore,
    media_type_for,
    validate_key,
)
from tests.fixtures.mounts import tmpfs


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "storage")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ArtifactKind.LOGS, "logs/abc-123.log"),
        (ArtifactKind.LOCKFILE, "lockfile/abc-123.yml"),
        (ArtifactKind.YAML, "yaml/abc-123.yml"),
        (ArtifactKind.CONDA_PACK, "archive/abc-123.tar.gz"),
    ],
)
def test_artifact_kinds_use_conda_store_key_layout(kind: ArtifactKind, expected: str) -> None:
    assert kind.storage_key("abc-123") == expected
    assert ArtifactKind(kind.value) is kind


def test_artifact_kinds_have_download_media_types() -> None:
    assert ArtifactKind.LOGS.media_type == "text/plain; charset=utf-8"
    assert ArtifactKind.YAML.media_type == "application/yaml"
    assert ArtifactKind.CONDA_PACK.media_type == "application/gzip"
    assert media_type_for("oci/blobs/sha256/abc") == "application/octet-stream"


def test_build_key_with_a_slash_is_refused() -> None:
    with pytest.raises(InvalidArtifactKey, match="must not contain '/'"):
        ArtifactKind.LOGS.storage_key("ns/abc")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("logs/../../etc/passwd", r"a '\.\.' part, which could point outside the store"),
        ("..", r"'\.\.' part"),
        ("logs/./a.log", r"a '\.' part"),
        ("logs//a.log", "empty part"),
        ("logs/", "empty part"),
        ("logs\\a.log", "backslash"),
        ("logs/a\x00.log", "control character"),
        ("logs/.a.log.123.tmp", "reserved for in-progress writes"),
        ("x" * 1025, "longer than 1024 bytes"),
        ("logs/" + "x" * 256, "longer than 255 bytes"),
    ],
)
def test_unsafe_keys_are_refused_with_the_reason(
    store: LocalArtifactStore, key: str, message: str
) -> None:
    with pytest.raises(InvalidArtifactKey, match=message):
        validate_key(key)
    with pytest.raises(InvalidArtifactKey):
        store.put(key, b"x")
    with pytest.raises(InvalidArtifactKey):
        store.get(key)
    assert not (store.storage_path.parent / "etc").exists()


def test_invalid_key_is_a_storage_error() -> None:
    assert issubclass(InvalidArtifactKey, StorageError)


# -- round trip ------------------------------------------------------------------------------


def test_put_get_exists_size_delete(store: LocalArtifactStore) -> None:
    key = ArtifactKind.LOCKFILE.storage_key("b1")
    assert not store.exists(key)
    store.put(key, b"version: 1\n")
    assert store.exists(key)
    assert store.get(key) == b"version: 1\n"
    assert store.size(key) == 11
    assert (store.storage_path / "lockfile" / "b1.yml").read_bytes() == b"version: 1\n"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # idempotent


def test_put_replaces_existing_content(store: LocalArtifactStore) -> None:
    store.put("yaml/b.yml", b"old content that is longer")
    store.put("yaml/b.yml", b"new")
    assert store.get("yaml/b.yml") == b"new"


def test_stored_files_are_readable_by_others(store: LocalArtifactStore) -> None:
    store.put("yaml/b.yml", b"x")
    assert (store.path_of("yaml/b.yml").stat().st_mode & 0o777) == 0o644


def test_missing_artifact_raises_not_found_naming_it(store: LocalArtifactStore) -> None:
    for read in (store.get, store.size, store.stream):
        with pytest.raises(ArtifactNotFound, match=r"'logs/nope.log' not found in .*storage"):
            read("logs/nope.log")


def test_a_directory_is_not_an_artifact(store: LocalArtifactStore) -> None:
    store.put("logs/a.log", b"x")
    assert not store.exists("logs")
    with pytest.raises(ArtifactNotFound):
        store.get("logs")
    with pytest.raises(ArtifactNotFound):
        store.size("logs")
    store.delete("logs")
    assert store.exists("logs/a.log")


def test_stream_yields_chunks(store: LocalArtifactStore) -> None:
    data = bytes(range(256)) * 40
    store.put("archive/b.tar.gz", data)
    chunks = list(store.stream("archive/b.tar.gz", chunk_size=1000))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) == 1000


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (5, 6), (100, None), (9990, 20000), (10240, None), (20000, None), (7, 7)],
)
def test_stream_range_behaves_like_a_slice(
    store: LocalArtifactStore, start: int, end: int | None
) -> None:
    data = os.urandom(10240)
    store.put("archive/b.tar.gz", data)
    got = b"".join(store.stream("archive/b.tar.gz", chunk_size=333, start=start, end=end))
    assert got == data[start:end]


def test_stream_rejects_inverted_range(store: LocalArtifactStore) -> None:
    store.put("a/b", b"x")
    with pytest.raises(ValueError, match="before start"):
        store.stream("a/b", start=5, end=2)


def test_stream_closed_early_releases_the_file(store: LocalArtifactStore) -> None:
    store.put("a/b", b"x" * 100)
    chunks = store.stream("a/b", chunk_size=10)
    assert next(chunks) == b"x" * 10
    chunks.close()
    store.delete("a/b")
    assert not store.exists("a/b")


def test_put_file_copies_a_large_file(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "env.tar.gz"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    store.put_file("archive/b.tar.gz", source)
    assert store.get("archive/b.tar.gz") == data
    assert source.read_bytes() == data


def test_put_file_of_a_missing_source_names_it(store: LocalArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot store .*missing.tar.gz.*cannot be read"):
        store.put_file("archive/b.tar.gz", tmp_path / "missing.tar.gz")
    assert not store.exists("archive/b.tar.gz")


# -- atomicity -------------------------------------------------------------------------------


def test_failed_write_keeps_old_content_and_leaves_no_temp_file(
    store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("yaml/b.yml", b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space left on device") as info:
        store.put("yaml/b.yml", b"new content")
    assert "writable" in str(info.value)
    monkeypatch.undo()
    assert store.get("yaml/b.yml") == b"old"
    assert _leftovers(store.storage_path / "yaml") == []


def test_failed_first_write_leaves_no_artifact(
    store: LocalArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big"
    source.write_bytes(b"y" * (5 * 1024 * 1024))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match="Input/output error"):
        store.put_file("archive/b.tar.gz", source)
    monkeypatch.undo()
    assert not store.exists("archive/b.tar.gz")
    assert _leftovers(store.storage_path / "archive") == []


def test_readers_never_see_a_partial_artifact(store: LocalArtifactStore) -> None:
    versions = [bytes([n]) * (256 * 1024) for n in range(20)]
    store.put("archive/b.tar.gz", versions[0])
    seen: list[bytes] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(store.get("archive/b.tar.gz"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in versions[1:]:
            store.put("archive/b.tar.gz", version)
    finally:
        done.set()
        reader.join()
    assert seen
    assert all(content in versions for content in seen)


# -- append ----------------------------------------------------------------------------------


def test_append_creates_then_extends_a_log(store: LocalArtifactStore) -> None:
    key = ArtifactKind.LOGS.storage_key("b1")
    store.append(key, b"solving\n")
    store.append(key, b"installing\n")
    assert store.get(key) == b"solving\ninstalling\n"
    assert store.size(key) == len(b"solving\ninstalling\n")


def test_concurrent_appends_lose_nothing(store: LocalArtifactStore) -> None:
    key = "logs/b.log"

    def write(n: int) -> None:
        for i in range(200):
            store.append(key, f"{n}:{i}\n".encode())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = store.get(key).decode().splitlines()
    assert sorted(lines) == sorted(f"{n}:{i}" for n in range(4) for i in range(200))


def test_base_append_is_read_modify_write(store: LocalArtifactStore) -> None:
    """The generic append (used by S3) gives the same result as the native one."""
    from appliance.storage.base import Storage

    Storage.append(store, "logs/c.log", b"a\n")
    Storage.append(store, "logs/c.log", b"b\n")
    assert store.get("logs/c.log") == b"a\nb\n"


# -- urls and checks -------------------------------------------------------------------------


def test_url_is_none_so_kiln_serves_the_file(store: LocalArtifactStore) -> None:
    store.put("logs/a.log", b"x")
    assert store.url("logs/a.log", expires=timedelta(minutes=5)) is None


def test_url_uses_storage_url_when_the_operator_sets_one(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path, storage_url="https://files.example.com/kiln/")
    assert (
        store.url("archive/b 1.tar.gz", expires=timedelta(minutes=5))
        == "https://files.example.com/kiln/archive/b%201.tar.gz"
    )


def test_check_creates_the_directory(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "new" / "storage")
    store.check()
    assert store.storage_path.is_dir()
    assert list(store.storage_path.iterdir()) == []


def test_check_explains_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalArtifactStore(blocker / "storage")
    with pytest.raises(StorageError, match=r"local artifact storage .* is not usable") as info:
        store.check()
    assert "LocalStorage.storage_path" in str(info.value)


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory Kiln cannot write to: mode 0500, or (as root, who ignores modes) a
    read-only tmpfs."""
    root = tmp_path / "ro"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o500)
        yield root
        root.chmod(0o700)
        return
    with tmpfs(root, "ro,size=64k") as mountpoint:
        yield mountpoint


def test_write_to_read_only_directory_says_what_to_fix(read_only_directory: Path) -> None:
    store = LocalArtifactStore(read_only_directory)
    with pytest.raises(StorageError, match=r"Permission denied|Read-only file system"):
        store.put("logs/a.log", b"x")
    with pytest.raises(StorageError, match="writable"):
        store.check()

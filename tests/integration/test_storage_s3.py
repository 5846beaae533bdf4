"""S3ArtifactStore against a real S3 server (SeaweedFS, started once per session)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.common.errors import ArtifactNotFound, ConfigurationError, StorageError
from appliance.storage import ArtifactKind, InvalidArtifactKey, S3ArtifactStore
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.s3


def make_store(server: S3Server, **overrides: Any) -> S3ArtifactStore:
    settings: dict[str, Any] = {
        "internal_endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "region": server.region,
        "bucket_name": server.bucket,
        "secure": False,
    }
    settings.update(overrides)
    return S3ArtifactStore(**settings)


@pytest.fixture
def store(s3_bucket: S3Server) -> S3ArtifactStore:
    return make_store(s3_bucket)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read()
        return data


# -- round trip ------------------------------------------------------------------------------


def test_check_passes_with_good_settings(store: S3ArtifactStore) -> None:
    store.check()


def test_put_get_exists_size_delete(store: S3ArtifactStore, s3_bucket: S3Server) -> None:
    key = ArtifactKind.LOCKFILE.storage_key("b1")
    assert not store.exists(key)
    store.put(key, b"version: 1\n")
    assert store.exists(key)
    assert store.get(key) == b"version: 1\n"
    assert store.size(key) == 11
    stat = s3_bucket.client().stat_object(s3_bucket.bucket, key)
    assert stat.content_type == "application/yaml"
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # idempotent


def test_empty_artifact_round_trips(store: S3ArtifactStore) -> None:
    store.put("logs/empty.log", b"")
    assert store.get("logs/empty.log") == b""
    assert store.size("logs/empty.log") == 0
    assert b"".join(store.stream("logs/empty.log")) == b""


def test_missing_artifact_raises_not_found(store: S3ArtifactStore, s3_bucket: S3Server) -> None:
    for read in (store.get, store.size, store.stream):
        with pytest.raises(
            ArtifactNotFound, match=f"'logs/nope.log' not found in S3 bucket '{s3_bucket.bucket}'"
        ):
            read("logs/nope.log")
    with pytest.raises(ArtifactNotFound):
        store.stream("logs/nope.log", start=3, end=3)


def test_stream_yields_chunks(store: S3ArtifactStore) -> None:
    data = os.urandom(300_000)
    store.put("archive/b.tar.gz", data)
    chunks = list(store.stream("archive/b.tar.gz", chunk_size=64 * 1024))
    assert b"".join(chunks) == data
    assert len(chunks) > 1


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (5, 6), (100, None), (9990, 20000), (10240, None), (20000, None), (7, 7)],
)
def test_stream_range_behaves_like_a_slice(
    store: S3ArtifactStore, start: int, end: int | None
) -> None:
    data = os.urandom(10240)
    store.put("blobs/b", data)
    got = b"".join(store.stream("blobs/b", chunk_size=333, start=start, end=end))
    assert got == data[start:end]


def test_stream_closed_early_releases_the_connection(store: S3ArtifactStore) -> None:
    store.put("blobs/b", b"x" * 200_000)
    for _ in range(15):  # more than the pool size: leaked connections would block
        chunks = store.stream("blobs/b", chunk_size=1000)
        assert next(chunks) == b"x" * 1000
        chunks.close()
    assert store.get("blobs/b") == b"x" * 200_000


def test_put_file_uploads_a_multi_megabyte_archive_in_parts(
    store: S3ArtifactStore, s3_bucket: S3Server, tmp_path: Path
) -> None:
    source = tmp_path / "env.tar.gz"
    data = os.urandom(12 * 1024 * 1024 + 123)
    source.write_bytes(data)
    key = ArtifactKind.CONDA_PACK.storage_key("b1")
    store.put_file(key, source)
    stat = s3_bucket.client().stat_object(s3_bucket.bucket, key)
    assert stat.etag is not None and "-" in stat.etag  # a multipart upload's ETag is "<md5>-<n>"
    assert stat.content_type == "application/gzip"
    assert store.size(key) == len(data)
    digest = hashlib.sha256()
    for chunk in store.stream(key):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_put_file_of_a_missing_source_names_it(store: S3ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot store .*missing.tar.gz.*cannot be read"):
        store.put_file("archive/b.tar.gz", tmp_path / "missing.tar.gz")


def test_append_builds_a_log_step_by_step(store: S3ArtifactStore) -> None:
    key = ArtifactKind.LOGS.storage_key("b1")
    store.append(key, b"solving\n")
    store.append(key, b"installing\n")
    assert store.get(key) == b"solving\ninstalling\n"


def test_appends_from_threads_of_one_process_lose_nothing(store: S3ArtifactStore) -> None:
    def write(n: int) -> None:
        for i in range(10):
            store.append("logs/b.log", f"{n}:{i}\n".encode())

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = store.get("logs/b.log").decode().splitlines()
    assert sorted(lines) == sorted(f"{n}:{i}" for n in range(4) for i in range(10))


def test_invalid_keys_are_refused_before_any_request(s3_server: S3Server) -> None:
    store = make_store(s3_server, internal_endpoint=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(InvalidArtifactKey, match="absolute"):
        store.put("/etc/passwd", b"x")
    with pytest.raises(InvalidArtifactKey, match="outside the store"):
        store.get("logs/../x")


# -- presigned URLs --------------------------------------------------------------------------


def test_presigned_url_serves_the_artifact(store: S3ArtifactStore) -> None:
    store.put("archive/b.tar.gz", b"the archive")
    url = store.url("archive/b.tar.gz", expires=timedelta(minutes=5))
    assert _fetch(url) == b"the archive"


def test_tampered_presigned_url_is_refused(store: S3ArtifactStore) -> None:
    store.put("archive/b.tar.gz", b"the archive")
    store.put("archive/other.tar.gz", b"someone else's archive")
    url = store.url("archive/b.tar.gz", expires=timedelta(minutes=5))
    tampered = [
        url.replace("archive/b.tar.gz", "archive/other.tar.gz"),
        url.replace("X-Amz-Expires=300", "X-Amz-Expires=604800"),
        url[:-1] + ("0" if url[-1] != "0" else "1"),
    ]
    for bad in tampered:
        with pytest.raises(urllib.error.HTTPError) as info:
            _fetch(bad)
        assert info.value.code == 403


def test_presigned_url_lives_as_long_as_asked(store: S3ArtifactStore) -> None:
    url = store.url("logs/b.log", expires=timedelta(minutes=15))
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["900"]


def test_presigned_url_uses_the_external_endpoint_without_contacting_it(
    s3_bucket: S3Server,
) -> None:
    store = make_store(s3_bucket, external_endpoint="downloads.example.com", external_secure=True)
    url = store.url("archive/b.tar.gz", expires=timedelta(hours=1))
    assert url.startswith(f"https://downloads.example.com/{s3_bucket.bucket}/archive/b.tar.gz?")
    assert "X-Amz-Signature=" in url


def test_presigned_url_lifetime_is_limited(store: S3ArtifactStore) -> None:
    with pytest.raises(StorageError, match="1 second to 7 days"):
        store.url("logs/b.log", expires=timedelta(days=8))


# -- operator errors -------------------------------------------------------------------------


def test_wrong_secret_key_is_reported_as_rejected_credentials(s3_bucket: S3Server) -> None:
    store = make_store(s3_bucket, secret_key="not-the-secret")
    with pytest.raises(StorageError) as info:
        store.check()
    message = str(info.value)
    assert f"S3 endpoint {s3_bucket.url} rejected the credentials" in message
    assert f"access key {s3_bucket.access_key!r}" in message
    assert "access key or secret key is wrong" in message
    assert "not-the-secret" not in message


def test_unknown_access_key_is_reported_as_rejected_credentials(s3_bucket: S3Server) -> None:
    store = make_store(s3_bucket, access_key="nobody", secret_key="whatever")
    with pytest.raises(StorageError, match=r"rejected the credentials.*'nobody'.*InvalidAccessKey"):
        store.check()
    with pytest.raises(StorageError, match="rejected the credentials"):
        store.put("logs/a.log", b"x")


def test_wrong_credentials_on_a_head_request_still_point_at_credentials(
    s3_bucket: S3Server,
) -> None:
    store = make_store(s3_bucket, secret_key="not-the-secret")
    with pytest.raises(StorageError, match="access key/secret key are wrong or they lack"):
        store.exists("logs/a.log")


def test_missing_bucket_is_named_and_must_be_created_first(s3_server: S3Server) -> None:
    store = make_store(s3_server, bucket_name="no-such-bucket")
    with pytest.raises(StorageError) as info:
        store.check()
    message = str(info.value)
    assert f"S3 bucket 'no-such-bucket' does not exist at {s3_server.url}" in message
    assert "create it first" in message
    assert not isinstance(info.value, ArtifactNotFound)
    with pytest.raises(StorageError, match="'no-such-bucket' does not exist"):
        store.put("logs/a.log", b"x")


def test_unreachable_endpoint_fails_fast_and_says_nothing_answers(s3_server: S3Server) -> None:
    endpoint = f"127.0.0.1:{_closed_port()}"
    store = make_store(s3_server, internal_endpoint=endpoint)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.check()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"nothing answers at S3 endpoint http://{endpoint}" in message
    assert "Connection refused" in message
    assert "S3Storage.internal_endpoint" in message
    with pytest.raises(StorageError, match="nothing answers"):
        store.get("logs/a.log")


def test_silent_endpoint_times_out_quickly(s3_server: S3Server) -> None:
    """A server that accepts connections but never answers: the read timeout ends the wait."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
        store = make_store(s3_server, internal_endpoint=endpoint, read_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(StorageError, match="stopped sending data"):
            store.check()
        assert time.monotonic() - started < 5
    finally:
        listener.close()
        for conn in accepted:
            conn.close()


def test_tls_to_a_plain_http_endpoint_suggests_secure_false(s3_bucket: S3Server) -> None:
    store = make_store(s3_bucket, secure=True)
    with pytest.raises(StorageError, match=r"TLS with S3 endpoint https://.*secure = False"):
        store.check()


def test_endpoint_with_scheme_is_accepted(s3_bucket: S3Server) -> None:
    store = make_store(s3_bucket, internal_endpoint=s3_bucket.url, secure=True)
    store.check()
    assert store.internal_url == s3_bucket.url


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"internal_endpoint": "http://host:9000/bucket"}, "without a path"),
        ({"internal_endpoint": "ftp://host"}, "scheme 'ftp'"),
        ({"bucket_name": "x"}, "not a valid S3 bucket name"),
        ({"credentials": object()}, "must be a minio.credentials.Provider"),
    ],
)
def test_malformed_settings_are_configuration_errors(
    s3_server: S3Server, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_store(s3_server, **overrides)


def test_credentials_provider_class_is_built_with_its_arguments(s3_bucket: S3Server) -> None:
    from minio.credentials.providers import StaticProvider

    store = make_store(
        s3_bucket,
        access_key=None,
        secret_key=None,
        credentials=StaticProvider,
        credentials_args=[s3_bucket.access_key],
        credentials_kwargs={"secret_key": s3_bucket.secret_key},
    )
    store.check()
    store.put("logs/a.log", b"via provider")
    assert store.get("logs/a.log") == b"via provider"


def test_failing_credentials_provider_is_explained(s3_bucket: S3Server) -> None:
    from minio.credentials.providers import Provider

    class Broken(Provider):
        def retrieve(self) -> Any:
            raise ValueError("no instance metadata service")

    store = make_store(s3_bucket, access_key=None, secret_key=None, credentials=Broken)
    with pytest.raises(StorageError, match="cannot obtain S3 credentials from Broken"):
        store.check()

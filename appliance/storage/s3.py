"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph RGW, ...).

Uses the MinIO client. Two endpoints, as in conda-store: Kiln talks to ``internal_endpoint``
(inside the cluster) and signs download URLs for ``external_endpoint`` (what users' browsers and
``curl`` reach). Presigned URLs are computed locally: signing needs no request to either endpoint.
"""

from __future__ import annotations

import contextlib
import io
import os
import ssl
import threading
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.credentials.providers import Provider, StaticProvider
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import check_bucket_name
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as UrllibSSLError
from urllib3.response import BaseHTTPResponse

from appliance.common.errors import ArtifactNotFound, ConfigurationError, StorageError
from appliance.storage.base import (
    DEFAULT_CHUNK_SIZE,
    Storage,
    StoredObject,
    check_range,
    media_type_for,
    validate_key,
    validate_prefix,
)

#: Seconds to wait for a TCP connection before calling the endpoint unreachable.
DEFAULT_CONNECT_TIMEOUT = 3.0
#: Seconds to wait for the next bytes of an answer (large objects stream; this is per read).
DEFAULT_READ_TIMEOUT = 60.0

#: Longest lifetime S3 allows for a presigned URL (SigV4).
MAX_URL_LIFETIME = timedelta(days=7)

#: Prefix listed by :meth:`S3ArtifactStore.check`; no valid key starts with ``.``.
_CHECK_PREFIX = ".kiln-check/"

_CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
)
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "NoSuchObject"})


class S3ArtifactStore(Storage):
    """Artifacts as objects in one S3 bucket; the key is the object name.

    Settings (the ``S3Storage`` traitlets class passes its options through unchanged):

    * ``internal_endpoint``: ``host[:port]`` Kiln connects to. An ``http://`` or ``https://``
      prefix is accepted and decides TLS for that endpoint.
    * ``external_endpoint``: ``host[:port]`` put into presigned download URLs; defaults to the
      internal endpoint.
    * ``secure``: use TLS for both endpoints unless ``internal_secure``/``external_secure`` say
      otherwise for one of them.
    * ``access_key``/``secret_key``: static credentials. ``credentials`` instead names a MinIO
      credentials provider (class or instance, e.g. ``minio.credentials.IamAwsProvider``); a
      class is built with ``credentials_args``/``credentials_kwargs``. No credentials at all
      means anonymous requests.
    * ``region``: the bucket's region (``us-east-1`` by default). It is never looked up over the
      network, so signing URLs for an external endpoint Kiln cannot reach works.
    * ``bucket_name``: must exist; Kiln does not create buckets.

    Construction does no I/O; :meth:`check` proves the endpoint answers, the credentials are
    accepted and the bucket exists, each with its own message. Connections time out after
    ``connect_timeout`` seconds and are retried once, so an unreachable endpoint fails fast.

    Build logs: S3 has no append, so :meth:`append` reads the object and writes it back whole
    (see :meth:`Storage.append`): fine per build step or batch of lines, wasteful per line; one
    writing process per key.
    """

    def __init__(
        self,
        *,
        internal_endpoint: str,
        bucket_name: str,
        external_endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        secure: bool = True,
        internal_secure: bool | None = None,
        external_secure: bool | None = None,
        credentials: type[Provider] | Provider | None = None,
        credentials_args: Sequence[Any] = (),
        credentials_kwargs: Mapping[str, Any] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        internal_host, internal_tls = _parse_endpoint(
            "S3Storage.internal_endpoint",
            internal_endpoint,
            secure if internal_secure is None else internal_secure,
        )
        external_host, external_tls = _parse_endpoint(
            "S3Storage.external_endpoint",
            external_endpoint or internal_endpoint,
            secure if external_secure is None else external_secure,
        )
        try:
            check_bucket_name(bucket_name)
        except ValueError as exc:
            raise ConfigurationError(
                f"S3Storage.bucket_name {bucket_name!r} is not a valid S3 bucket name: "
                "use 3-63 lowercase letters, digits, '.' and '-'"
            ) from exc
        self.bucket_name = bucket_name
        self.region = region
        self.access_key = access_key
        self.internal_url = f"{'https' if internal_tls else 'http'}://{internal_host}"
        self.external_url = f"{'https' if external_tls else 'http'}://{external_host}"
        self.connect_timeout = connect_timeout
        self._append_locks = tuple(threading.Lock() for _ in range(64))
        self._provider = _build_provider(
            credentials, credentials_args, credentials_kwargs, access_key, secret_key
        )
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(
                total=3,
                connect=1,
                read=1,
                other=0,  # TLS and similar errors do not heal by retrying
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
            ),
        )
        self._client = Minio(
            internal_host,
            secure=internal_tls,
            region=region,
            http_client=self._http,
            credentials=self._provider,
        )
        self._signer = Minio(
            external_host,
            secure=external_tls,
            region=region,
            http_client=self._http,
            credentials=self._provider,
        )

    def __repr__(self) -> str:
        return (
            f"S3ArtifactStore(internal_endpoint={self.internal_url!r}, "
            f"bucket_name={self.bucket_name!r}, access_key={self.access_key!r})"
        )

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> None:
        """List the bucket once: proves reachability, credentials and the bucket's existence."""
        if self._provider is not None:
            try:
                self._provider.retrieve()
            except Exception as exc:
                raise StorageError(
                    f"cannot obtain S3 credentials from {type(self._provider).__name__}: {exc}. "
                    "Check S3Storage.credentials, credentials_args and credentials_kwargs."
                ) from exc
        with self._errors("listing", None):
            next(iter(self._client.list_objects(self.bucket_name, prefix=_CHECK_PREFIX)), None)

    # -- writes -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        with self._errors("writing", key):
            self._client.put_object(
                self.bucket_name,
                key,
                io.BytesIO(data),
                len(data),
                content_type=media_type_for(key),
            )

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Upload ``path``; files above 5 MiB go up as a multipart upload in 5 MiB+ parts."""
        validate_key(key)
        source = os.fspath(path)
        try:
            with open(source, "rb"):
                pass
        except OSError as exc:
            raise StorageError(
                f"cannot store {source} as artifact {key!r}: the file cannot be read "
                f"({exc.strerror or exc})"
            ) from exc
        with self._errors("writing", key):
            self._client.fput_object(
                self.bucket_name, key, source, content_type=media_type_for(key)
            )

    def append(self, key: str, data: bytes) -> None:
        """Read-modify-write (S3 has no append); appends in this process are serialised per key.

        Writers in other processes are not coordinated: keep one writer per log (the worker
        running the build).
        """
        validate_key(key)
        with self._append_locks[hash(key) % len(self._append_locks)]:
            super().append(key, data)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._errors("deleting", key):
            self._client.remove_object(self.bucket_name, key)

    # -- reads --------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        validate_key(key)
        with self._errors("reading", key):
            response = self._client.get_object(self.bucket_name, key)
            try:
                return response.read()
            finally:
                _release(response)

    def stream(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        start: int = 0,
        end: int | None = None,
    ) -> Generator[bytes, None, None]:
        check_range(start, end, chunk_size)
        validate_key(key)
        if end is not None and end == start:
            self.size(key)  # a missing key still raises ArtifactNotFound
            return _nothing()
        length = 0 if end is None else end - start
        with self._errors("reading", key):
            try:
                response = self._client.get_object(
                    self.bucket_name, key, offset=start, length=length
                )
            except S3Error as exc:
                if exc.code != "InvalidRange":
                    raise
                # Asked for bytes past the end: like a slice, that is empty (if the key exists).
                self.size(key)
                return _nothing()
        return self._chunks(response, key, chunk_size)

    def _chunks(
        self, response: BaseHTTPResponse, key: str, chunk_size: int
    ) -> Generator[bytes, None, None]:
        try:
            with self._errors("reading", key):
                yield from response.stream(chunk_size)
        finally:
            _release(response)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ArtifactNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        validate_key(key)
        with self._errors("looking up", key):
            stat = self._client.stat_object(self.bucket_name, key)
        return stat.size or 0

    def modified(self, key: str) -> datetime:
        validate_key(key)
        with self._errors("looking up", key):
            stat = self._client.stat_object(self.bucket_name, key)
        return _utc(stat.last_modified)

    def touch(self, key: str) -> None:
        """Copy the object onto itself (server side, new metadata), which renews its
        modification time; objects over 5 GiB are copied part by part, still server side."""
        validate_key(key)
        with self._errors("touching", key):
            self._client.copy_object(
                self.bucket_name,
                key,
                CopySource(self.bucket_name, key),
                metadata={"Content-Type": media_type_for(key)},
                metadata_directive=REPLACE,
            )

    def objects(self, prefix: str = "") -> Iterator[StoredObject]:
        """A paged listing (1,000 keys per request); keys outside Kiln's rules are skipped."""
        validate_prefix(prefix)
        with self._errors("listing", None):
            listing = self._client.list_objects(self.bucket_name, prefix=prefix, recursive=True)
            found = [
                StoredObject(item.object_name, item.size or 0, _utc(item.last_modified))
                for item in listing
                if item.object_name is not None and not item.is_dir and _valid(item.object_name)
            ]
        return iter(found)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket_name}/{validate_key(key)}"

    def url(self, key: str, *, expires: timedelta) -> str:
        """A presigned GET URL for ``key`` on the external endpoint, valid for ``expires``.

        ``expires`` must be between one second and seven days (the SigV4 limits).
        """
        validate_key(key)
        if not timedelta(seconds=1) <= expires <= MAX_URL_LIFETIME:
            raise StorageError(
                f"presigned URL lifetime {expires} is out of range: S3 allows 1 second to 7 days"
            )
        with self._errors("signing a URL for", key):
            return self._signer.presigned_get_object(self.bucket_name, key, expires=expires)

    # -- errors -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None) -> Iterator[None]:
        """Translate MinIO and urllib3 exceptions into messages an operator can act on.

        ``action`` is a gerund ("reading", "listing") that completes "while ... <what>".
        """
        try:
            yield
        except S3Error as exc:
            self._raise_s3_error(action, key, exc)
        except (MaxRetryError, HTTPError, OSError) as exc:
            raise StorageError(self._network_message(action, key, exc)) from exc
        except (InvalidResponseError, ServerError) as exc:
            raise StorageError(
                f"S3 endpoint {self.internal_url} gave an answer that is not a valid S3 "
                f"response while {action} {self._what(key)} ({exc}). Check that "
                "S3Storage.internal_endpoint points at the S3 API, not a web console or proxy."
            ) from exc
        except MinioException as exc:
            raise StorageError(
                f"S3 request to {self.internal_url} failed while {action} {self._what(key)}: {exc}"
            ) from exc

    def _what(self, key: str | None) -> str:
        if key is None:
            return f"bucket {self.bucket_name!r}"
        return f"artifact {key!r} in bucket {self.bucket_name!r}"

    def _raise_s3_error(self, action: str, key: str | None, exc: S3Error) -> NoReturn:
        code = exc.code or ""
        detail = f"{code}: {exc.message}" if exc.message else code
        access_key = self.access_key or f"<from {type(self._provider).__name__}>"
        if code == "NoSuchBucket":
            raise StorageError(
                f"S3 bucket {self.bucket_name!r} does not exist at {self.internal_url}. "
                "Kiln does not create buckets: create it first (for example "
                f"`aws s3 mb s3://{self.bucket_name} --endpoint-url {self.internal_url}`) "
                "or set S3Storage.bucket_name to an existing bucket."
            ) from exc
        if code in _MISSING_KEY_CODES and key is not None:
            raise ArtifactNotFound(
                f"artifact {key!r} not found in S3 bucket {self.bucket_name!r} "
                f"at {self.internal_url}"
            ) from exc
        if code in _CREDENTIAL_CODES:
            raise StorageError(
                f"S3 endpoint {self.internal_url} rejected the credentials (access key "
                f"{access_key!r}; {detail}): the access key or secret key is wrong. Check "
                "S3Storage.access_key and S3Storage.secret_key (or S3Storage.credentials)."
            ) from exc
        if code == "AccessDenied":
            raise StorageError(
                f"S3 endpoint {self.internal_url} denied access while {action} "
                f"{self._what(key)} (access key {access_key!r}; {detail}): either the access "
                "key/secret key are wrong or they lack permission. Kiln needs s3:ListBucket, "
                "s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket."
            ) from exc
        raise StorageError(
            f"S3 endpoint {self.internal_url} refused the request while {action} "
            f"{self._what(key)} ({detail})"
        ) from exc

    def _network_message(self, action: str, key: str | None, exc: BaseException) -> str:
        cause: BaseException = exc
        if isinstance(exc, MaxRetryError) and exc.reason is not None:
            cause = exc.reason
        where = f"while {action} {self._what(key)}"
        if isinstance(cause, UrllibSSLError) or isinstance(_innermost_exc(cause), ssl.SSLError):
            return (
                f"TLS with S3 endpoint {self.internal_url} failed {where} "
                f"({_innermost(cause)}). If the endpoint speaks plain HTTP, set "
                "S3Storage.secure = False; if its certificate comes from a private authority, "
                "point SSL_CERT_FILE at that authority's certificate."
            )
        if isinstance(cause, (ProtocolError, ReadTimeoutError)):
            reason = (
                "the server stopped sending data"
                if isinstance(cause, ReadTimeoutError)
                else _innermost(cause)
            )
            return (
                f"S3 endpoint {self.internal_url} stopped answering {where} ({reason}). "
                "Retry; if it keeps happening, check the S3 server's health and load."
            )
        if isinstance(cause, NameResolutionError):
            reason = f"host name does not resolve: {_innermost(cause)}"
        elif isinstance(cause, NewConnectionError):  # a ConnectTimeoutError subclass
            reason = _innermost(cause)
        elif isinstance(cause, ConnectTimeoutError):
            reason = f"no connection within {self.connect_timeout:g} s"
        else:
            reason = _innermost(cause)
        return (
            f"nothing answers at S3 endpoint {self.internal_url} ({reason}) {where}. Check "
            "S3Storage.internal_endpoint and that the S3 server is running and reachable "
            "from this host."
        )


def _parse_endpoint(setting: str, endpoint: str, secure: bool) -> tuple[str, bool]:
    """Split ``[scheme://]host[:port]`` into ``host[:port]`` and whether to use TLS."""
    value = endpoint.strip()
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ConfigurationError(
                f"{setting} {endpoint!r} has scheme {parts.scheme!r}; use http, https or "
                "host:port with S3Storage.secure"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"{setting} {endpoint!r} must be host[:port] without a path; "
                "the bucket is set with S3Storage.bucket_name"
            )
        return parts.netloc, parts.scheme == "https"
    if not value or "/" in value:
        raise ConfigurationError(
            f"{setting} {endpoint!r} must be host[:port], for example 's3.example.com:9000'"
        )
    return value, secure


def _build_provider(
    credentials: type[Provider] | Provider | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    access_key: str | None,
    secret_key: str | None,
) -> Provider | None:
    if credentials is None:
        if not access_key:
            return None
        if secret_key is None:
            raise ConfigurationError("S3Storage.access_key is set but S3Storage.secret_key is not")
        return StaticProvider(access_key, secret_key)
    if isinstance(credentials, Provider):
        if args or kwargs:
            raise ConfigurationError(
                "S3Storage.credentials_args/credentials_kwargs only apply when "
                "S3Storage.credentials is a provider class, not an instance"
            )
        return credentials
    if isinstance(credentials, type) and issubclass(credentials, Provider):
        try:
            return credentials(*args, **dict(kwargs or {}))
        except Exception as exc:
            raise ConfigurationError(
                f"cannot create S3 credentials provider {credentials.__name__} with "
                f"credentials_args={list(args)!r} and credentials_kwargs={dict(kwargs or {})!r}: "
                f"{exc}"
            ) from exc
    raise ConfigurationError(
        f"S3Storage.credentials must be a minio.credentials.Provider class or instance, "
        f"got {credentials!r}"
    )


def _innermost_exc(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or exc.__context__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt


def _innermost(exc: BaseException) -> str:
    inner = _innermost_exc(exc)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return str(inner) or type(inner).__name__


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.fromtimestamp(0, UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _valid(key: str) -> bool:
    try:
        validate_key(key)
    except StorageError:
        return False
    return True


def _nothing() -> Generator[bytes, None, None]:
    yield from ()


def _release(response: BaseHTTPResponse) -> None:
    response.close()
    response.release_conn()

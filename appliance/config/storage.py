"""Options of the artifact stores: ``LocalStorage`` (the default) and ``S3Storage``.

These classes hold settings only; the stores themselves live in :mod:`appliance.storage`,
which picks its implementation from ``CondaStore.storage_class``.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Dict, List, TraitError, Type, Unicode, default, validate

from appliance.config.base import DEFAULT_TEXT, ENV, FOLLOWS, SECRET, DataDirPath, KilnConfigurable


class Storage(KilnConfigurable):
    """Base of the artifact storage classes that ``CondaStore.storage_class`` can name."""


class LocalStorage(Storage):
    """Artifacts (logs, lockfiles, YAML, conda-pack archives, OCI blobs) on the local disk.

    Kiln's default: an appliance must run with nothing else. Every web process must see the
    same directory (shared disk) when several hosts serve the API; otherwise use S3Storage.
    """

    storage_path = DataDirPath(
        help="""
        Directory where artifacts are kept. A relative path is taken relative to the data dir.
        Kiln serves these files only after a permission check (conda-store mounted this
        directory at /storage for anyone).

        Example: c.LocalStorage.storage_path = "/srv/kiln/artifacts"
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "<data dir>/storage"})

    @default("storage_path")
    def _default_storage_path(self) -> str:
        return str(self.data_dir.storage)

    storage_url = Unicode(
        None,
        allow_none=True,
        help="""
        Base URL of artifact downloads, for links Kiln hands out. Unset (None) means
        "<url_prefix>/storage" on the server that answered the request. Set it when a proxy
        publishes Kiln under another URL.

        Example: c.LocalStorage.storage_url = "https://kiln.example.org/storage"
        """,
    ).tag(config=True)


def _check_endpoint(owner: str, value: str) -> str:
    if "://" in value:
        raise TraitError(
            f"{owner}: give host[:port] without a scheme (got {value!r}); "
            "choose https/http with S3Storage.secure"
        )
    return value.rstrip("/")


class S3Storage(Storage):
    """Artifacts in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph RGW, ...).

    Select it with ``c.CondaStore.storage_class = "S3Storage"``. Downloads are redirected to a
    short-lived presigned URL after Kiln has checked the caller's permissions. The bucket must
    exist; Kiln never creates or deletes buckets.
    """

    internal_endpoint = Unicode(
        "",
        help="""
        host[:port] of the S3 API as Kiln's own processes reach it (no scheme). Required when
        S3Storage is the storage class.

        Example: c.S3Storage.internal_endpoint = "minio:9000"
        """,
    ).tag(config=True)

    external_endpoint = Unicode(
        "",
        help="""
        host[:port] of the S3 API as users' clients reach it; presigned download URLs are
        signed for this host. Empty means the same as internal_endpoint.

        Example: c.S3Storage.external_endpoint = "s3.example.org"
        """,
    ).tag(config=True)

    @validate("internal_endpoint", "external_endpoint")
    def _validate_endpoint(self, proposal: Any) -> str:
        return _check_endpoint(f"S3Storage.{proposal.trait.name}", proposal.value)

    access_key = Unicode(
        None,
        allow_none=True,
        help="""
        Access key id for the bucket. Leave unset to use S3Storage.credentials instead (IAM,
        environment, ...). Not treated as a secret (it is an identifier); secret_key is.
        Environment variable: KILN_S3_ACCESS_KEY.

        Example: c.S3Storage.access_key = "kiln"
        """,
    ).tag(config=True, **{ENV: "KILN_S3_ACCESS_KEY"})

    secret_key = Unicode(
        None,
        allow_none=True,
        help="""
        Secret access key for the bucket (masked in `kiln config show`).
        Environment variable: KILN_S3_SECRET_KEY.

        Example: c.S3Storage.secret_key = open("/run/secrets/s3").read().strip()
        """,
    ).tag(config=True, **{SECRET: True, ENV: "KILN_S3_SECRET_KEY"})

    region = Unicode(
        "us-east-1",
        help="""
        Region of the bucket (most S3-compatible servers accept us-east-1).

        Example: c.S3Storage.region = "eu-central-1"
        """,
    ).tag(config=True)

    bucket_name = Unicode(
        "conda-store",
        help="""
        Name of the bucket; it must already exist. The default is conda-store's, so an
        existing deployment keeps its bucket.

        Example: c.S3Storage.bucket_name = "kiln-artifacts"
        """,
    ).tag(config=True)

    secure = Bool(
        True,
        help="""
        Use https for both endpoints. internal_secure and external_secure (conda-store's
        options) follow this value unless set themselves.

        Example: c.S3Storage.secure = False
        """,
    ).tag(config=True)

    internal_secure = Bool(
        help="""
        Use https for internal_endpoint. Follows S3Storage.secure unless set.

        Example: c.S3Storage.internal_secure = False
        """,
    ).tag(config=True, **{FOLLOWS: "secure", DEFAULT_TEXT: "the value of S3Storage.secure"})

    @default("internal_secure")
    def _default_internal_secure(self) -> bool:
        return bool(self.secure)

    external_secure = Bool(
        help="""
        Use https for external_endpoint (the scheme of presigned URLs). Follows
        S3Storage.secure unless set.

        Example: c.S3Storage.external_secure = True
        """,
    ).tag(config=True, **{FOLLOWS: "secure", DEFAULT_TEXT: "the value of S3Storage.secure"})

    @default("external_secure")
    def _default_external_secure(self) -> bool:
        return bool(self.secure)

    credentials = Type(
        None,
        klass="minio.credentials.providers.Provider",
        allow_none=True,
        help="""
        A minio-py credentials provider class used instead of access_key/secret_key, e.g.
        for IAM roles. It is called with credentials_args and credentials_kwargs.

        Example: c.S3Storage.credentials = "minio.credentials.IamAwsProvider"
        """,
    ).tag(config=True)

    credentials_args: List[Any] = List(
        [],
        help="""
        Positional arguments for the credentials provider.

        Example: c.S3Storage.credentials_args = ["http://169.254.169.254"]
        """,
    ).tag(config=True)

    credentials_kwargs = Dict(
        {},
        help="""
        Keyword arguments for the credentials provider (masked in `kiln config show`, since
        providers often take secrets).

        Example: c.S3Storage.credentials_kwargs = {"custom_endpoint": "https://sts.example.org"}
        """,
    ).tag(config=True, **{SECRET: True})


#: Short names accepted by ``CondaStore.storage_class``.
STORAGE_CLASSES: dict[str, type] = {"LocalStorage": LocalStorage, "S3Storage": S3Storage}

#: conda-store modules whose ``<module>.<name>`` spelling names the same storage classes.
CONDA_STORE_STORAGE_MODULES = ("conda_store_server.storage",)

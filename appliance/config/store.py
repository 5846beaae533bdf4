"""``CondaStore``: what environments may contain, where they are built, what a build produces.

The option names and meanings are conda-store's (so its configuration files load unchanged);
the differences are Kiln's deliberate defaults and are stated in each option's help.
"""

from __future__ import annotations

import re
import string
from typing import Any

from traitlets import Callable, Enum, Integer, List, TraitError, Unicode, Union, default, validate

from appliance.config.auth import NAME_CHARACTERS
from appliance.config.base import (
    DEFAULT_TEXT,
    ENV,
    FOLLOWS,
    SECRET,
    ClassChoice,
    DataDirPath,
    KilnConfigurable,
    enum_value,
    obsolete_option,
)
from appliance.config.platforms import KNOWN_PLATFORMS, current_platform
from appliance.config.storage import (
    CONDA_STORE_STORAGE_MODULES,
    STORAGE_CLASSES,
    LocalStorage,
    Storage,
)

#: Artifacts Kiln produces (values of ``build_artifacts``).
ARTIFACT_TYPES = ("LOGS", "LOCKFILE", "YAML", "CONDA_PACK", "OCI_IMAGE")

#: conda-store artifact types that are accepted but not produced, with the reason.
IGNORED_ARTIFACT_TYPES = {
    "CONSTRUCTOR_INSTALLER": "Kiln does not build constructor installers",
    "DOCKER_MANIFEST": "Kiln's container image artifact is OCI_IMAGE",
    "DOCKER_BLOB": "Kiln's container image artifact is OCI_IMAGE",
    "CONTAINER_REGISTRY": "Kiln serves OCI_IMAGE from its own registry instead of pushing",
    "DIRECTORY": "the built prefix is always kept until its build is deleted",
}

#: Artifacts every build produces whatever ``build_artifacts`` says.
ALWAYS_PRODUCED = ("LOGS", "LOCKFILE")

_NAME = re.compile(rf"^[{NAME_CHARACTERS}]+$")
_DIRECTORY_KEYS = {"store_directory", "namespace", "name"}


def _artifact_list(owner: str, value: list[Any], *, add_always: bool) -> list[str]:
    result: list[str] = []
    for item in value:
        name = enum_value(item)
        if not isinstance(name, str):
            raise TraitError(f"{owner}: {item!r} is not an artifact type name")
        name = name.upper()
        if name in IGNORED_ARTIFACT_TYPES:
            continue
        if name not in ARTIFACT_TYPES:
            raise TraitError(
                f"{owner}: unknown artifact type {name!r}; allowed: {', '.join(ARTIFACT_TYPES)}"
            )
        if name not in result:
            result.append(name)
    if add_always:
        missing = [name for name in ALWAYS_PRODUCED if name not in result]
        result = missing + result
    return result


def _directory_template(owner: str, value: str) -> str:
    keys = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    unknown = keys - _DIRECTORY_KEYS
    if unknown:
        raise TraitError(
            f"{owner}: unknown placeholder(s) {', '.join(sorted(unknown))}; "
            f"allowed: {{store_directory}}, {{namespace}}, {{name}}"
        )
    return value


def _platforms(owner: str, value: list[Any]) -> list[str]:
    result: list[str] = []
    for item in value:
        if item not in KNOWN_PLATFORMS:
            raise TraitError(
                f"{owner}: unknown platform {item!r}; allowed: {', '.join(KNOWN_PLATFORMS)}"
            )
        if item not in result:
            result.append(item)
    if not result:
        raise TraitError(f"{owner}: needs at least one platform, e.g. [{current_platform()!r}]")
    return result


class CondaStore(KilnConfigurable):
    """Shared by the web server and the workers: build policy, paths, database, artifacts."""

    # --- where things are kept -------------------------------------------------------------

    storage_class = ClassChoice(
        LocalStorage,
        klass=Storage,
        choices=STORAGE_CLASSES,
        conda_store_modules=CONDA_STORE_STORAGE_MODULES,
        help="""
        Where build artifacts are stored: "LocalStorage" (the default, in the data dir) or
        "S3Storage" (configure c.S3Storage.*). Accepts the class, its short name or
        conda-store's dotted path ("conda_store_server.storage.S3Storage").

        Example: c.CondaStore.storage_class = "S3Storage"
        """,
    ).tag(config=True)

    store_directory = DataDirPath(
        help="""
        Directory where environments are built: <store_directory>/<namespace>/<build key>/,
        with <namespace>/envs/<name> pointing at the current build. Workers on several hosts
        need it on shared storage (NFS or block storage per worker pool). A relative path is
        taken relative to the data dir (conda-store: relative to the working directory).

        Example: c.CondaStore.store_directory = "/opt/environments"
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "<data dir>/store"})

    @default("store_directory")
    def _default_store_directory(self) -> str:
        return str(self.data_dir.store)

    build_directory = Unicode(
        "{store_directory}/{namespace}",
        help="""
        Template of the directory that holds a namespace's builds; each build is
        <build_directory>/<build key>. Placeholders: {store_directory}, {namespace}, {name}.

        Example: c.CondaStore.build_directory = "{store_directory}/builds/{namespace}"
        """,
    ).tag(config=True)

    environment_directory = Unicode(
        "{store_directory}/{namespace}/envs/{name}",
        help="""
        Template of the path of an environment's symlink to its current build.
        Placeholders: {store_directory}, {namespace}, {name}.

        Example: c.CondaStore.environment_directory = "/shared/envs/{namespace}-{name}"
        """,
    ).tag(config=True)

    @validate("build_directory", "environment_directory")
    def _validate_directory_template(self, proposal: Any) -> str:
        return _directory_template(f"CondaStore.{proposal.trait.name}", proposal.value)

    build_key_version = Enum(
        [1, 2, 3],
        default_value=2,
        help="""
        Format of build keys (the directory name of a build), as in conda-store:
        1 = <sha256>-<date>-<id>-<name>, 2 = <sha256[:8]>-<unix time>-<id>-<name>,
        3 = a 32-character hash only (shortest paths).

        Example: c.CondaStore.build_key_version = 3
        """,
    ).tag(config=True)

    database_url = Unicode(
        None,
        allow_none=True,
        help="""
        SQLAlchemy URL of the PostgreSQL database. Unset (the default) means the managed
        PostgreSQL that `kiln serve` runs in <data dir>/pg. Set it to share one database
        between several hosts. Kiln needs PostgreSQL: a conda-store "sqlite:///" URL is
        ignored with a warning (the managed PostgreSQL is used); other databases are refused.
        The password is masked in `kiln config show`.
        Environment variable: KILN_DATABASE_URL.

        Example: c.CondaStore.database_url = "postgresql://kiln:secret@db.example.org/kiln"
        """,
    ).tag(
        config=True,
        **{
            SECRET: "url",
            ENV: "KILN_DATABASE_URL",
            DEFAULT_TEXT: "None (managed PostgreSQL in <data dir>/pg)",
        },
    )

    @validate("database_url")
    def _validate_database_url(self, proposal: Any) -> str | None:
        value: str | None = proposal.value
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme.startswith("sqlite"):
            return None
        if scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise TraitError(
                "CondaStore.database_url: Kiln stores its state in PostgreSQL; give a "
                "postgresql:// URL, or leave it unset to use the managed PostgreSQL"
            )
        return value

    storage_threshold = Integer(
        5 * 1024**3,
        min=0,
        help="""
        Minimum free space in bytes on the store directory's file system; creating or
        updating an environment is refused below it. 0 turns the check off.

        Example: c.CondaStore.storage_threshold = 20 * 1024**3
        """,
    ).tag(config=True)

    # --- namespaces and permissions of built environments ----------------------------------

    default_namespace = Unicode(
        "default",
        help="""
        Namespace used when a request names none; created at start.

        Example: c.CondaStore.default_namespace = "shared"
        """,
    ).tag(config=True)

    filesystem_namespace = Unicode(
        "filesystem",
        help="""
        Namespace of the environments registered from CondaStoreWorker.watch_paths.

        Example: c.CondaStore.filesystem_namespace = "files"
        """,
    ).tag(config=True)

    @validate("default_namespace", "filesystem_namespace")
    def _validate_namespace(self, proposal: Any) -> str:
        value: str = proposal.value
        if not _NAME.match(value):
            raise TraitError(
                f"CondaStore.{proposal.trait.name}: {value!r} is not a valid namespace name "
                f"(allowed characters: {NAME_CHARACTERS})"
            )
        return value

    default_uid = Integer(
        None,
        allow_none=True,
        min=0,
        help="""
        Owner (uid) given to the files of built environments. Unset means the worker's own
        uid (what conda-store's default amounted to), and no chown is done.

        Example: c.CondaStore.default_uid = 1000
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "None (the worker's uid)"})

    default_gid = Integer(
        None,
        allow_none=True,
        min=0,
        help="""
        Group (gid) given to the files of built environments. Unset means the worker's own
        gid, and no chown is done.

        Example: c.CondaStore.default_gid = 100
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "None (the worker's gid)"})

    default_permissions = Unicode(
        "775",
        allow_none=True,
        help="""
        Octal mode applied to the directories of built environments (files keep their
        executable bits; group and other get read access as the mode allows). None leaves
        the modes the installer wrote.

        Example: c.CondaStore.default_permissions = "755"
        """,
    ).tag(config=True)

    @validate("default_permissions")
    def _validate_permissions(self, proposal: Any) -> str | None:
        value = proposal.value
        if value is None:
            return None
        if not (isinstance(value, str) and 3 <= len(value) <= 4 and set(value) <= set("01234567")):
            raise TraitError(
                f"CondaStore.default_permissions: {value!r} is not an octal mode such as '775'"
            )
        return str(value)

    # --- channels and packages -------------------------------------------------------------

    conda_channel_alias = Unicode(
        "https://conda.anaconda.org",
        help="""
        URL prepended to channel names that are not URLs ("conda-forge" ->
        "<alias>/conda-forge"). Point it at a mirror for air-gapped sites.

        Example: c.CondaStore.conda_channel_alias = "https://conda-mirror.example.org"
        """,
    ).tag(config=True)

    @validate("conda_channel_alias")
    def _validate_channel_alias(self, proposal: Any) -> str:
        value: str = proposal.value
        if value.split("://", 1)[0] not in ("http", "https", "file") or "://" not in value:
            raise TraitError(
                f"CondaStore.conda_channel_alias: {value!r} is not an http(s):// or file:// URL"
            )
        return value.rstrip("/")

    conda_default_channels = List(
        Unicode(),
        ["conda-forge"],
        help="""
        Channels used when a specification lists none.

        Example: c.CondaStore.conda_default_channels = ["conda-forge", "bioconda"]
        """,
    ).tag(config=True)

    conda_allowed_channels = List(
        Unicode(),
        help="""
        Channels a specification may use, compared after normalization with
        conda_channel_alias. Kiln enforces it for every submission, lockfiles included (a
        spec naming another channel is refused with a clear error). Kiln's default is the
        list of conda_default_channels rather than conda-store's "anything goes": a channel
        can be any URL or path on the server. An explicit empty list still means every
        channel is allowed, as in conda-store (Kiln warns about it).

        Example: c.CondaStore.conda_allowed_channels = ["conda-forge", "https://conda.example.org/ours"]
        """,
    ).tag(
        config=True,
        **{FOLLOWS: "conda_default_channels", DEFAULT_TEXT: "the value of conda_default_channels"},
    )

    @default("conda_allowed_channels")
    def _default_allowed_channels(self) -> list[str]:
        return list(self.conda_default_channels)

    conda_indexed_channels = List(
        Unicode(),
        help="""
        Channels whose package index Kiln keeps (refreshed periodically) for package search
        in the UI and the API. Kiln's default is conda_default_channels (conda-store indexed
        main and conda-forge).

        Example: c.CondaStore.conda_indexed_channels = ["conda-forge"]
        """,
    ).tag(
        config=True,
        **{FOLLOWS: "conda_default_channels", DEFAULT_TEXT: "the value of conda_default_channels"},
    )

    @default("conda_indexed_channels")
    def _default_indexed_channels(self) -> list[str]:
        return list(self.conda_default_channels)

    conda_platforms = List(
        Unicode(),
        help="""
        Platforms (channel subdirs) whose package index is downloaded. Default: this host's
        platform and noarch.

        Example: c.CondaStore.conda_platforms = ["linux-64", "linux-aarch64", "noarch"]
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "[<this host's platform>, 'noarch']"})

    @default("conda_platforms")
    def _default_conda_platforms(self) -> list[str]:
        return [current_platform(), "noarch"]

    conda_solve_platforms = List(
        Unicode(),
        help="""
        Platforms every lockfile covers. A worker installs only its own platform, which should
        be in this list (Kiln warns otherwise). noarch is implied. Default: this host's
        platform only.

        Example: c.CondaStore.conda_solve_platforms = ["linux-64", "osx-arm64", "win-64"]
        """,
    ).tag(config=True, **{DEFAULT_TEXT: "[<this host's platform>]"})

    @default("conda_solve_platforms")
    def _default_solve_platforms(self) -> list[str]:
        return [current_platform()]

    @validate("conda_platforms", "conda_solve_platforms")
    def _validate_platforms(self, proposal: Any) -> list[str]:
        return _platforms(f"CondaStore.{proposal.trait.name}", proposal.value)

    conda_default_packages = List(
        Unicode(),
        [],
        help="""
        conda packages used when a specification lists no dependencies.

        Example: c.CondaStore.conda_default_packages = ["python", "ipykernel"]
        """,
    ).tag(config=True)

    conda_required_packages = List(
        Unicode(),
        [],
        help="""
        conda packages every specification must list; a specification without them is
        refused, naming the missing ones.

        Example: c.CondaStore.conda_required_packages = ["python"]
        """,
    ).tag(config=True)

    conda_included_packages = List(
        Unicode(),
        [],
        help="""
        conda packages added to every specification that does not list them.

        Example: c.CondaStore.conda_included_packages = ["ipykernel"]
        """,
    ).tag(config=True)

    pypi_default_packages = List(
        Unicode(),
        [],
        help="""
        pip packages used when a specification has no pip section.

        Example: c.CondaStore.pypi_default_packages = ["requests"]
        """,
    ).tag(config=True)

    pypi_required_packages = List(
        Unicode(),
        [],
        help="""
        pip packages every specification must list in its pip section.

        Example: c.CondaStore.pypi_required_packages = ["nbgitpuller"]
        """,
    ).tag(config=True)

    pypi_included_packages = List(
        Unicode(),
        [],
        help="""
        pip packages added to every specification that does not list them.

        Example: c.CondaStore.pypi_included_packages = ["nbgitpuller"]
        """,
    ).tag(config=True)

    conda_max_solve_time = Integer(
        5 * 60,
        min=1,
        help="""
        Seconds a solve may take before the build fails with a timeout.

        Example: c.CondaStore.conda_max_solve_time = 600
        """,
    ).tag(config=True)

    # --- what a build produces -------------------------------------------------------------

    build_artifacts: List[Any] = List(
        help="""
        Artifacts produced for every build: LOGS, LOCKFILE, YAML (pinned export),
        CONDA_PACK (conda-pack archive), OCI_IMAGE (image served by Kiln's registry, pull with
        docker/podman/skopeo). LOGS and LOCKFILE are always produced. conda-store's
        CONSTRUCTOR_INSTALLER, DOCKER_MANIFEST, DOCKER_BLOB, CONTAINER_REGISTRY and DIRECTORY
        are accepted and ignored with a warning; its BuildArtifactType enum members work too.

        Example: c.CondaStore.build_artifacts = ["LOCKFILE", "YAML", "CONDA_PACK"]
        """,
    ).tag(config=True)

    @default("build_artifacts")
    def _default_build_artifacts(self) -> list[str]:
        return list(ARTIFACT_TYPES)

    @validate("build_artifacts")
    def _validate_build_artifacts(self, proposal: Any) -> list[str]:
        return _artifact_list("CondaStore.build_artifacts", proposal.value, add_always=True)

    build_artifacts_kept_on_deletion = List(
        ["LOGS", "LOCKFILE", "YAML"],
        help="""
        Artifacts kept when a build is deleted, so it can be inspected or rebuilt later.
        Same names as build_artifacts.

        Example: c.CondaStore.build_artifacts_kept_on_deletion = ["LOGS", "LOCKFILE"]
        """,
    ).tag(config=True)

    @validate("build_artifacts_kept_on_deletion")
    def _validate_kept_artifacts(self, proposal: Any) -> list[str]:
        return _artifact_list(
            "CondaStore.build_artifacts_kept_on_deletion", proposal.value, add_always=False
        )

    default_docker_base_image = Union(
        [Unicode(), Callable()],
        default_value="scratch",
        help="""
        Base image of OCI_IMAGE artifacts: the name of an image imported with `kiln image
        import` (Kiln never pulls from the internet), or "scratch" (the default: the
        environment alone, which needs a glibc-based base image to run most packages). A
        callable taking the build and returning a name is accepted, as in conda-store.

        Example: c.CondaStore.default_docker_base_image = "debian:bookworm-slim"
        """,
    ).tag(config=True)

    # --- accepted for compatibility, ignored -----------------------------------------------

    conda_command = obsolete_option(
        "Kiln solves and installs with py-rattler; no conda or mamba executable is used",
        """
        conda-store's solver executable ("mamba"). Ignored.

        Example: c.CondaStore.conda_command = "mamba"
        """,
    )

    conda_flags = obsolete_option(
        "Kiln does not run conda-lock; strict channel priority is always used",
        """
        Flags conda-store passed to conda-lock (CONDA_FLAGS). Ignored.

        Example: c.CondaStore.conda_flags = "--strict-channel-priority"
        """,
    )

    lock_backend = obsolete_option(
        "Kiln writes lockfiles itself from its py-rattler solve",
        """
        conda-store's lock plugin name. Ignored.

        Example: c.CondaStore.lock_backend = "conda-lock"
        """,
    )

    celery_broker_url = obsolete_option(
        "Kiln queues jobs in PostgreSQL (Procrastinate); there is no Celery broker",
        """
        conda-store's Celery broker URL. Ignored.

        Example: c.CondaStore.celery_broker_url = "redis://redis:6379/0"
        """,
    ).tag(**{SECRET: "url"})

    celery_results_backend = obsolete_option(
        "Kiln keeps job state in PostgreSQL; there is no Celery result backend",
        """
        conda-store's Celery result backend URL. Ignored.

        Example: c.CondaStore.celery_results_backend = "redis://redis:6379/0"
        """,
    ).tag(**{SECRET: "url"})

    redis_url = obsolete_option(
        "Kiln needs no Redis: its queue and locks live in PostgreSQL",
        """
        conda-store's Redis URL. Ignored.

        Example: c.CondaStore.redis_url = "redis://:password@redis:6379/0"
        """,
    ).tag(**{SECRET: "url"})

    upgrade_db = obsolete_option(
        "migrations are their own step: `kiln migrate` (run by `kiln serve` before anything else)",
        """
        conda-store's switch for migrating the database at server start. Ignored.

        Example: c.CondaStore.upgrade_db = True
        """,
    )

    serialize_builds = obsolete_option(
        "it had no effect in conda-store either",
        """
        Deprecated conda-store option. Ignored.

        Example: c.CondaStore.serialize_builds = True
        """,
    )

    container_registry_class = obsolete_option(
        "Kiln serves images from its own registry (/v2/) and pushes nowhere",
        """
        conda-store's (deprecated) registry class. Ignored.

        Example: c.CondaStore.container_registry_class = ContainerRegistry
        """,
    )

    win_extended_length_prefix = obsolete_option(
        "Kiln builds on Linux and macOS only",
        """
        conda-store's Windows long-path switch. Ignored.

        Example: c.CondaStore.win_extended_length_prefix = True
        """,
    )

    validate_specification = obsolete_option(
        "Kiln applies its policy from the conda_* and pypi_* options; custom validation "
        "callables are not run",
        """
        conda-store's specification validation hook. Ignored.

        Example: c.CondaStore.validate_specification = my_function
        """,
    )

    validate_action = obsolete_option(
        "Kiln checks storage_threshold itself; custom action callables are not run",
        """
        conda-store's action validation hook. Ignored.

        Example: c.CondaStore.validate_action = my_function
        """,
    )

    post_update_environment_build_hook = obsolete_option(
        "Kiln runs no user code in its processes; watch builds through the API instead",
        """
        conda-store's hook called when an environment's current build changes. Ignored.

        Example: c.CondaStore.post_update_environment_build_hook = my_function
        """,
    )

    @classmethod
    def value_notices(cls, name: str, value: Any) -> list[str]:
        notices: list[str] = []
        if name in ("build_artifacts", "build_artifacts_kept_on_deletion") and isinstance(
            value, list | tuple | set
        ):
            for item in value:
                artifact = enum_value(item)
                if isinstance(artifact, str) and artifact.upper() in IGNORED_ARTIFACT_TYPES:
                    reason = IGNORED_ARTIFACT_TYPES[artifact.upper()]
                    notices.append(f"CondaStore.{name}: {artifact} is ignored: {reason}")
        if name == "database_url" and isinstance(value, str) and value.startswith("sqlite"):
            notices.append(
                "CondaStore.database_url: Kiln cannot use SQLite; the URL is ignored and the "
                "managed PostgreSQL in the data dir is used (conda-store's data is not imported)"
            )
        if name == "conda_allowed_channels" and value == []:
            notices.append(
                "CondaStore.conda_allowed_channels is empty: specifications may use any "
                "channel, including URLs and paths on this server"
            )
        return notices

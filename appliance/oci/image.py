"""The image config and manifest of a built image, from its base and its layers.

Everything here is a pure function of its inputs and serialised with
:func:`~appliance.oci.layout.canonical_json`, so the same inputs give the same digests. There
is no creation time (the epoch is written, as reproducible-build tools do).

Config decisions (documented for users in the ``Images`` help and the README):

- ``Env``: the base image's variables, then ``PATH`` with ``<prefix>/bin`` first (before the
  base's ``PATH``, or the usual system ``PATH`` on ``scratch``), ``CONDA_PREFIX`` and
  ``CONDA_DEFAULT_ENV`` as ``conda activate`` sets them, then the specification's
  ``variables`` (which win).
- ``Entrypoint``: the base's, if any (Kiln adds none: an environment has no single program).
- ``Cmd``: the base's, if any (``bash`` in a Debian base: a shell with the environment on
  ``PATH``); otherwise ``<prefix>/bin/python`` when the environment has Python, else
  ``<prefix>/bin/bash`` or ``<prefix>/bin/sh`` when it has a shell; otherwise none, and
  ``docker run`` needs a command.
- ``Labels``: the base's, plus ``kiln.namespace``, ``kiln.environment``,
  ``kiln.lockfile.sha256`` and (only with ``Images.build_label``) ``kiln.build``.
- ``WorkingDir``, ``User``, ``ExposedPorts``...: the base's, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.oci.layout import (
    CONFIG,
    DOCKER_TO_OCI,
    LAYER_GZIP,
    MANIFEST,
    SCRATCH,
    canonical_json,
    descriptor,
    digest_of_bytes,
)
from appliance.oci.tarball import LayerBlob

#: The creation time written into configs and history: the Unix epoch.
EPOCH = "1970-01-01T00:00:00Z"

#: PATH of an image without a base image (the usual Linux default, as Docker uses).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: conda platform -> OCI (architecture, variant).
ARCHITECTURES: Mapping[str, tuple[str, str | None]] = {
    "linux-64": ("amd64", None),
    "linux-aarch64": ("arm64", None),
    "linux-ppc64le": ("ppc64le", None),
    "linux-s390x": ("s390x", None),
    "linux-armv7l": ("arm", "v7"),
    "linux-32": ("386", None),
}

LABEL_NAMESPACE = "kiln.namespace"
LABEL_ENVIRONMENT = "kiln.environment"
LABEL_LOCKFILE = "kiln.lockfile.sha256"
LABEL_BUILD = "kiln.build"


@dataclass(frozen=True)
class BaseImage:
    """The image a build's layers go on top of: an imported image, or ``scratch``."""

    reference: str = SCRATCH
    #: Digest of the base's manifest (None for scratch).
    manifest_digest: str | None = None
    #: The base's parsed config (empty for scratch).
    config: Mapping[str, Any] = field(default_factory=dict)
    #: The base's layer descriptors, media types as a built image lists them.
    layers: tuple[Mapping[str, Any], ...] = ()

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids") or []]

    @property
    def history(self) -> list[Any]:
        return list(self.config.get("history") or [])

    @property
    def container_config(self) -> Mapping[str, Any]:
        return self.config.get("config") or {}


def oci_layer_descriptor(layer: Mapping[str, Any]) -> dict[str, Any]:
    """A base layer's descriptor as a built (OCI) manifest lists it: Docker media types mapped
    to their OCI equivalents, other fields kept."""
    copied = dict(layer)
    media_type = str(copied.get("mediaType", LAYER_GZIP))
    copied["mediaType"] = DOCKER_TO_OCI.get(media_type, media_type)
    return copied


@dataclass(frozen=True)
class ImageDescription:
    """What an image says about itself beyond its files."""

    namespace: str
    environment: str
    #: The in-image prefix, e.g. ``/opt/conda/envs/<name>``.
    prefix: str
    #: conda platform of the environment (``linux-64``).
    platform: str
    lockfile_sha256: str | None = None
    build_id: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    #: Executables present in ``<prefix>/bin`` among python, bash, sh (for ``Cmd``).
    programs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuiltLayer:
    """A layer of the image being built and the history line that explains it."""

    blob: LayerBlob
    description: str


def _env_list(base_env: Sequence[str], description: ImageDescription) -> list[str]:
    values: dict[str, str] = {}
    for item in base_env:
        key, _, value = str(item).partition("=")
        values[key] = value
    base_path = values.get("PATH") or DEFAULT_PATH
    values["PATH"] = f"{description.prefix}/bin:{base_path}"
    values["CONDA_PREFIX"] = description.prefix
    values["CONDA_DEFAULT_ENV"] = description.prefix
    for key in sorted(description.variables):
        values[key] = str(description.variables[key])
    return [f"{key}={value}" for key, value in values.items()]


def _command(base: BaseImage, description: ImageDescription) -> list[str] | None:
    base_config = base.container_config
    if base_config.get("Cmd") or base_config.get("Entrypoint"):
        cmd = base_config.get("Cmd")
        return list(cmd) if cmd else None
    for program in ("python", "bash", "sh"):
        if program in description.programs:
            return [f"{description.prefix}/bin/{program}"]
    return None


def image_config(
    base: BaseImage, description: ImageDescription, layers: Sequence[BuiltLayer]
) -> dict[str, Any]:
    """The OCI image config of the image (see the module docstring for the choices)."""
    architecture, variant = ARCHITECTURES.get(description.platform, ("amd64", None))
    base_config = dict(base.container_config)
    labels = dict(base_config.get("Labels") or {})
    labels[LABEL_NAMESPACE] = description.namespace
    labels[LABEL_ENVIRONMENT] = description.environment
    if description.lockfile_sha256:
        labels[LABEL_LOCKFILE] = description.lockfile_sha256
    if description.build_id is not None:
        labels[LABEL_BUILD] = str(description.build_id)
    container: dict[str, Any] = {
        key: value
        for key, value in base_config.items()
        if key not in ("Env", "Cmd", "Labels", "Image", "Hostname", "Domainname")
        and value not in (None, "", [], {})
    }
    container["Env"] = _env_list(base_config.get("Env") or [], description)
    container["Labels"] = labels
    command = _command(base, description)
    if command:
        container["Cmd"] = command
    history = base.history + [
        {"created": EPOCH, "created_by": f"kiln: {layer.description}", "comment": "kiln"}
        for layer in layers
    ]
    config: dict[str, Any] = {
        "created": EPOCH,
        "architecture": architecture,
        "os": "linux",
        "config": container,
        "rootfs": {
            "type": "layers",
            "diff_ids": base.diff_ids + [layer.blob.diff_id for layer in layers],
        },
        "history": history,
    }
    if variant:
        config["variant"] = variant
    return config


def image_manifest(base: BaseImage, config: bytes, layers: Sequence[BuiltLayer]) -> dict[str, Any]:
    """The OCI image manifest: the config, the base's layers, then the built ones. A base
    image is recorded with the standard ``org.opencontainers.image.base.*`` annotations."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor(CONFIG, digest_of_bytes(config), len(config)),
        "layers": [oci_layer_descriptor(layer) for layer in base.layers]
        + [descriptor(LAYER_GZIP, layer.blob.digest, layer.blob.size) for layer in layers],
    }
    if base.manifest_digest is not None:
        manifest["annotations"] = {
            "org.opencontainers.image.base.name": base.reference,
            "org.opencontainers.image.base.digest": base.manifest_digest,
        }
    return manifest


def serialise(document: Mapping[str, Any]) -> bytes:
    """The stored bytes of a config or manifest (:func:`canonical_json`)."""
    return canonical_json(document)

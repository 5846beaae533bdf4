"""``Images``: how Kiln builds the OCI image of a build (the OCI_IMAGE artifact).

Whether images are built at all is ``CondaStore.build_artifacts`` (OCI_IMAGE), their base image
is ``CondaStore.default_docker_base_image``, and they are served by the registry
(``CondaStoreServer.enable_registry``). This class holds what conda-store had no option for.
"""

from __future__ import annotations

import posixpath
import string
from typing import Any

from traitlets import Bool, Float, Integer, TraitError, Unicode, validate

from appliance.config.base import KilnConfigurable

#: Placeholders ``Images.image_prefix`` may use.
PREFIX_FIELDS = frozenset({"name", "namespace"})


class Images(KilnConfigurable):
    """OCI images of builds: where the environment sits in the image, layers, blob cleanup."""

    image_prefix = Unicode(
        "/opt/conda/envs/{name}",
        help="""
        Absolute path of the environment inside its image. "{name}" is the environment's
        name and "{namespace}" its namespace. Builds install a second copy of the environment
        for this path (hardlinked from the package cache, so it costs little), so every
        prefix written into the packages' files is right inside the image. Images of
        environments with the same prefix share the layers of their common packages. At
        most 255 characters once filled in (the limit of conda's prefix placeholders).

        Example: c.Images.image_prefix = "/opt/{namespace}/{name}"
        """,
    ).tag(config=True)

    @validate("image_prefix")
    def _validate_image_prefix(self, proposal: Any) -> str:
        value = str(proposal.value)
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = fields - PREFIX_FIELDS
        if unknown:
            raise TraitError(
                f"Images.image_prefix {value!r}: unknown placeholder(s) "
                f"{', '.join('{' + f + '}' for f in sorted(unknown))}; use {{name}} and "
                "{namespace}"
            )
        sample = value.format(name="env", namespace="ns")
        if not sample.startswith("/") or posixpath.normpath(sample) != sample or sample == "/":
            raise TraitError(
                f"Images.image_prefix {value!r} must be an absolute, normalised path below '/' "
                "such as '/opt/conda/envs/{name}'"
            )
        return value

    max_layers = Integer(
        100,
        min=2,
        max=125,
        help="""
        Most layers an image may have, its base image's included (container runtimes refuse
        images of more than 127 layers). An environment gets one layer per conda package,
        so images that share packages share those layers; when there are more packages
        than layers, the smallest packages share one layer. The environment's metadata
        (conda-meta, activation scripts, pip-installed files) is always one more layer.

        Example: c.Images.max_layers = 60
        """,
    ).tag(config=True)

    build_label = Bool(
        False,
        help="""
        Add the build id as the image label "kiln.build". Off by default because the label
        makes every build's image different: without it, two builds of the same lockfile give
        the same image, byte for byte (same manifest digest). The image of a build is always
        pullable by the tag <build id> whatever this says.

        Example: c.Images.build_label = True
        """,
    ).tag(config=True)

    blob_grace_period = Float(
        3600.0,
        min=0.0,
        help="""
        Seconds an image blob no image refers to is kept before garbage collection removes it.
        Collection runs after each deleted build; blobs shared with any remaining image or an
        imported base image are always kept. The grace period protects builds in progress,
        whose image is not recorded until they complete (they refresh the blobs they reuse
        when those are older than half this period), so keep it well above the time a build
        needs to upload its image.

        Example: c.Images.blob_grace_period = 6 * 3600
        """,
    ).tag(config=True)

"""The image engine's errors (part of the tree rooted at :class:`KilnError`)."""

from __future__ import annotations

from appliance.common.errors import BuildError, KilnError


class ImageError(BuildError):
    """The build's OCI image could not be made."""

    code = "image"


class BaseImageNotFound(ImageError):
    """The configured base image has not been imported."""

    code = "base_image_not_found"


class InvalidImage(KilnError):
    """A file given to ``kiln image import`` is not an image Kiln can read."""

    code = "invalid_image"

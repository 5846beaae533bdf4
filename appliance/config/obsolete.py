"""conda-store classes that Kiln accepts in configuration files and ignores entirely."""

from __future__ import annotations

from appliance.config.base import KilnConfigurable, obsolete_option


class ContainerRegistry(KilnConfigurable):
    """conda-store's deprecated registry-push settings, accepted so old files load; all ignored."""

    container_registries = obsolete_option(
        "Kiln serves images from its own registry (/v2/) and pushes nowhere",
        """
        conda-store's registries to push images to. Ignored.

        Example: c.ContainerRegistry.container_registries = {}
        """,
    )

    container_registry_image_name = obsolete_option(
        "image names are <namespace>/<environment> in Kiln's registry",
        """
        conda-store's image name function. Ignored.

        Example: c.ContainerRegistry.container_registry_image_name = my_function
        """,
    )

    container_registry_image_tag = obsolete_option(
        "image tags are 'latest' and the build id in Kiln's registry",
        """
        conda-store's image tag function. Ignored.

        Example: c.ContainerRegistry.container_registry_image_tag = my_function
        """,
    )

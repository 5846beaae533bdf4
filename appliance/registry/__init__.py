"""Kiln's OCI registry: the distribution spec's pull API at ``/v2/`` (not under the url_prefix)
over the images Kiln builds (appliance.services.images). :func:`registry_router` is what the
web app mounts; errors under ``/v2`` use the spec's format (appliance.registry.errors)."""

from appliance.registry.errors import for_registry_paths
from appliance.registry.routes import registry_router

__all__ = ["for_registry_paths", "registry_router"]

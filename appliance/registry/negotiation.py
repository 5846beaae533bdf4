"""The request headers that shape an answer: which manifest types a client takes (``Accept``)
and which bytes of a blob it wants (``Range``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from appliance.oci import layout

DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Media types of manifests that registry clients name in ``Accept``.
MANIFEST_TYPES = frozenset(
    {*layout.MANIFEST_TYPES, *layout.INDEX_TYPES, DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED}
)

_WILDCARDS = frozenset({"*/*", "application/*"})
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def media_types(accept: Iterable[str]) -> set[str]:
    """The media types (without parameters, lower case) in ``Accept`` headers; clients send
    one header per type (containers/image) or one comma-separated header (docker)."""
    found: set[str] = set()
    for header in accept:
        for item in header.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                found.add(media_type)
    return found


def accepts(accept: Iterable[str], media_type: str) -> bool:
    """Whether a client that sent ``accept`` takes a manifest of ``media_type``.

    Clients that name manifest types get one of them: like the reference registry
    (distribution 2.8), an OCI manifest is not sent to a client that lists only Docker's types
    (it could not read it; the answer is 404 MANIFEST_UNKNOWN). Requests that name no manifest
    type at all (no ``Accept``, ``*/*``, ``application/json``: curl, browsers) get the
    manifest, whatever its type; the distribution spec leaves this to the registry.
    """
    types = media_types(accept)
    if media_type in types or types & _WILDCARDS:
        return True
    return not types & MANIFEST_TYPES


class RangeNotSatisfiable(Exception):
    """The requested range starts past the end of the blob."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The half-open byte range ``[start, end)`` a ``Range`` header asks for in a blob of
    ``size`` bytes; None to send it all (no ``Range``, several ranges, or a malformed one:
    RFC 9110 lets a server ignore those). Raises :class:`RangeNotSatisfiable` (416)."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return max(size - suffix, 0), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable()
    end = size if not last else min(int(last) + 1, size)
    return start, end

"""Server status, the caller's permissions and usage per namespace (tokens: v1/tokens.py)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import get

from appliance import __version__
from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ok
from appliance.schemas import api as wire
from appliance.services.access import describe_access
from appliance.services.usage import namespace_usage


class ServerStatus(msgspec.Struct, kw_only=True):
    version: str


@get("/", operation_id="get_status", summary="Server status", tags=["status"])
async def get_status() -> Ok[ServerStatus]:
    return Ok(data=ServerStatus(version=__version__))


@get(
    "/permission/",
    operation_id="get_permissions",
    summary="The caller's identity and effective permissions",
    tags=["auth"],
)
async def get_permissions(context: Context, caller: Who) -> Ok[wire.Permissions]:
    return Ok(data=await context.db.read(describe_access, caller))


@get(
    "/usage/",
    operation_id="get_usage",
    summary="Environments, builds and storage per namespace the caller can see",
    tags=["status"],
)
async def get_usage(context: Context, caller: Who) -> Ok[dict[str, wire.NamespaceUsage]]:
    return Ok(data=await context.db.read(namespace_usage, caller))


HANDLERS: list[Any] = [get_status, get_permissions, get_usage]

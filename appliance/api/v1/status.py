"""Server status, the caller's permissions, usage per namespace, and minting tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import get, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody

from appliance import __version__
from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ok
from appliance.schemas import api as wire
from appliance.services.access import describe_access
from appliance.services.tokens import Signer, mint_token
from appliance.services.usage import namespace_usage


class ServerStatus(msgspec.Struct, kw_only=True):
    version: str


class TokenRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/token/``. conda-store's client sends the expiry as ``exp`` (a bug of
    its own); both names are read, ``expiration`` first. Times are ISO 8601 or Unix seconds."""

    primary_namespace: str | None = None
    expiration: datetime | int | float | None = None
    exp: datetime | int | float | None = None
    role_bindings: dict[str, list[str]] | None = None
    #: What the token is for ("CI", "laptop"), shown when tokens are listed.
    name: str = ""


def _when(value: datetime | float | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValidationException(f"expiration {value!r} is not a valid time") from None


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
    return Ok(data=await context.db.run(describe_access, caller))


@get(
    "/usage/",
    operation_id="get_usage",
    summary="Environments, builds and storage per namespace the caller can see",
    tags=["status"],
)
async def get_usage(context: Context, caller: Who) -> Ok[dict[str, wire.NamespaceUsage]]:
    return Ok(data=await context.db.run(namespace_usage, caller))


@post(
    "/token/",
    operation_id="create_token",
    summary="Mint a token with at most the caller's rights and lifetime",
    tags=["auth"],
    status_code=200,
)
async def create_token(
    context: Context, caller: Who, data: JSONBody[TokenRequest]
) -> Ok[wire.IssuedToken]:
    request = data
    issued = await context.db.run(
        mint_token,
        caller,
        Signer(context.tokens.secret, context.tokens.algorithm),
        primary_namespace=request.primary_namespace,
        role_bindings=request.role_bindings,
        expiration=_when(request.expiration if request.expiration is not None else request.exp),
        name=request.name,
    )
    return Ok(data=issued)


HANDLERS: list[Any] = [get_status, get_permissions, get_usage, create_token]

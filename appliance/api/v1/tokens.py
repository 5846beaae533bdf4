"""Tokens: mint one (conda-store's ``POST /api/v1/token/``), list the caller's, revoke one.

Minting only narrows: the new token's bindings and lifetime are at most the caller's
(appliance.services.tokens). Listings never show a token itself, only its record. Revoking
takes effect on the token's next request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Router, delete, get, post
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from appliance.api.dependencies import Context, Who
from appliance.api.envelope import Ok, Page
from appliance.api.pagination import Order, PageNumber, PageSize, page_request
from appliance.schemas import api as wire
from appliance.services import tokens


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


@post(
    "/",
    operation_id="create_token",
    summary="Mint a token with at most the caller's rights and lifetime",
    status_code=200,
)
async def create_token(
    context: Context, caller: Who, data: JSONBody[TokenRequest]
) -> Ok[wire.IssuedToken]:
    issued = await context.db.run(
        tokens.mint_token,
        caller,
        tokens.Signer(context.tokens.secret, context.tokens.algorithm),
        primary_namespace=data.primary_namespace,
        role_bindings=data.role_bindings,
        expiration=_when(data.expiration if data.expiration is not None else data.exp),
        name=data.name,
    )
    return Ok(data=issued)


EveryUser = Annotated[
    bool,
    QueryParameter(
        name="all", description="every user's tokens (admins only); default: the caller's own"
    ),
]


@get(
    "/",
    operation_id="list_tokens",
    summary="The caller's tokens (never the tokens themselves), newest first",
)
async def list_tokens(
    context: Context,
    caller: Who,
    page: FromQuery[PageNumber] = 1,
    size: FromQuery[PageSize] = None,
    sort_by: FromQuery[list[Literal["created_on", "expires_on", "last_used"]] | None] = None,
    order: FromQuery[Order] = None,
    every_user: EveryUser = False,
) -> Page[wire.TokenInfo]:
    request = page_request(
        page=page,
        size=size,
        sort_by=sort_by,
        order=order,
        max_page_size=context.settings.max_page_size,
        sort_keys=tokens.TOKEN_SORT_KEYS,
    )
    listing = await context.db.read(tokens.list_tokens, caller, request, every_user=every_user)
    return Page(data=listing.items, page=listing.page, size=listing.size, count=listing.count)


@delete(
    "/{token_id:str}/",
    operation_id="revoke_token",
    summary="Revoke a token (the caller's own; any token for admins)",
    status_code=200,
)
async def revoke_token(
    context: Context, caller: Who, token_id: FromPath[str]
) -> Ok[wire.TokenInfo]:
    revoked = await context.db.run(tokens.revoke_token, caller, token_id)
    context.access_cache.forget(revoked.id)
    return Ok(data=revoked, message=f"token {revoked.id} revoked")


router = Router(
    path="/token", tags=["auth"], route_handlers=[create_token, list_tokens, revoke_token]
)

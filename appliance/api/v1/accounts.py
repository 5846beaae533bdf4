"""``POST /api/v1/setup/``: the first admin account of a new installation, created with the
one-time setup token ``kiln serve`` prints while no admin exists (appliance.services.accounts)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post
from litestar.params import JSONBody

from appliance.api.dependencies import Context
from appliance.api.envelope import Ok
from appliance.common.errors import ConfigurationError
from appliance.schemas import api as wire
from appliance.services import accounts


class SetupRequest(msgspec.Struct, kw_only=True):
    """The setup token from ``kiln serve``'s banner, and the admin account to create."""

    setup_token: str
    username: str
    password: str


@post(
    "/setup/",
    operation_id="create_first_admin",
    summary="Create the first admin account with the one-time setup token",
    tags=["auth"],
    status_code=200,
)
async def create_first_admin(context: Context, data: JSONBody[SetupRequest]) -> Ok[wire.Account]:
    if context.secrets_dir is None:  # pragma: no cover - from_config always sets it
        raise ConfigurationError("this server has no secrets dir, so it has no setup token")
    account = await context.db.run(
        accounts.create_first_admin,
        context.secrets_dir,
        data.setup_token,
        data.username,
        data.password,
    )
    accounts.remove_setup_token(context.secrets_dir)
    return Ok(
        data=account,
        message=f"admin account {account.username} created; log in at /login/",
    )


HANDLERS: list[Any] = [create_first_admin]

"""The UI's token pages: create a scoped token (shown once), revoke one.

Paths (under ``<url prefix>/ui``; the list ``/tokens/`` is a reading page of
:mod:`appliance.ui.browse`):

``/tokens/new/`` (GET), ``/tokens/`` (POST)
    The form, and minting the token (``mint_token``, as ``POST /api/v1/token/``): ``name``,
    ``bindings`` (``pattern: role, role`` per line; empty: all of the caller's own),
    ``primary_namespace`` (empty: the caller's), ``expiration`` (``YYYY-MM-DD[THH:MM]``, UTC;
    empty: when the caller's own token ends). Minting only narrows: the use case refuses
    bindings or a lifetime beyond the caller's. The answer is the page showing the token, once:
    rendered from the POST itself with ``Cache-Control: no-store`` (no redirect would carry
    the token without storing it somewhere), never shown again.
``/tokens/{id}/revoke/`` (POST)
    Revoke a token (``revoke_token``, as ``DELETE /api/v1/token/{id}/``); it stops working at
    once in this process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.types import ControllerRouterHandler

from appliance.api.context import ApiContext
from appliance.api.dependencies import Context, Who
from appliance.api.statuses import status_of
from appliance.common.errors import KilnError
from appliance.schemas.names import check_name
from appliance.services import tokens
from appliance.services.access import Caller
from appliance.ui.forms import Form, read_form, see_other
from appliance.ui.namespaces import is_form_problem, parse_mappings, rights_of
from appliance.ui.rendering import Pages

#: The fields of the token form, in the order a person fills them in.
FIELDS = ("name", "bindings", "primary_namespace", "expiration")


class TokenFormProblem(KilnError):
    """A field of the token form cannot be read; ``field`` names it."""

    code = "invalid_token_form"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_expiration(text: str) -> datetime | None:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` (UTC unless an offset is given) as a time;
    empty: None. Raises :class:`TokenFormProblem` for anything else."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TokenFormProblem(
            "expiration",
            f"expiration {text[:40]!r} is not a date and time: use YYYY-MM-DD or "
            "YYYY-MM-DDTHH:MM (UTC)",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def field_of(error: KilnError) -> str:
    """The form field a minting error is about (``form`` when none is)."""
    if isinstance(error, TokenFormProblem):
        return error.field
    if error.message.startswith("expiration"):
        return "expiration"
    if error.code == "invalid_name":
        return "primary_namespace"
    return "bindings"


def routes(pages: Pages) -> list[ControllerRouterHandler]:
    """The token pages' handlers (for the ``/ui`` router)."""

    async def show_form(
        request: Request[Any, Any, Any],
        context: ApiContext,
        caller: Caller,
        *,
        status_code: int = 200,
        entered: Form | None = None,
        problems: dict[str, str] | None = None,
    ) -> Response[str]:
        rights = await rights_of(context, caller)
        return pages.render(
            "token_new.html", caller, request, status_code=status_code,
            entered={field: entered.raw(field) if entered else "" for field in FIELDS},
            problems=problems or {}, own_roles=rights.roles, expiration=rights.expiration,
            primary_namespace=rights.primary_namespace, roles=sorted(context.policy.roles),
        )  # fmt: skip

    def require_login(caller: Caller) -> None:
        if caller.claims is None:
            raise NotAuthorizedException("log in to create and manage tokens")

    @get("/tokens/new/", include_in_schema=False)
    async def new_token(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[str]:
        """The form to create a token (logging in is needed: 401 -> the login page)."""
        require_login(caller)
        return await show_form(request, context, caller)

    @post("/tokens/", include_in_schema=False)
    async def create_token(
        request: Request[Any, Any, Any], context: Context, caller: Who
    ) -> Response[str]:
        """Mint the token and show it, once; bad input shows the form again, minting nothing."""
        require_login(caller)
        form = await read_form(request, caller, pages.secret)
        try:
            bindings_text = form.raw("bindings")
            try:
                bindings = parse_mappings(bindings_text) if bindings_text.strip() else None
            except KilnError as error:
                raise TokenFormProblem("bindings", f"role bindings: {error.message}") from None
            primary = form.text("primary_namespace")
            if primary:
                check_name(primary)
            issued = await context.db.run(
                tokens.mint_token,
                caller,
                tokens.Signer(context.tokens.secret, context.tokens.algorithm),
                primary_namespace=primary or None,
                role_bindings=bindings,
                expiration=parse_expiration(form.text("expiration")),
                name=form.text("name"),
            )
        except KilnError as error:
            if not is_form_problem(error):
                raise
            return await show_form(
                request, context, caller, status_code=status_of(error), entered=form,
                problems={field_of(error): error.message},
            )  # fmt: skip
        response = pages.render(
            "token_created.html", caller, request, issued=issued, title=form.text("name"),
            api=f"{request.url.scheme}://{request.url.netloc}{pages.prefix}/api/v1/",
        )  # fmt: skip
        response.headers["Cache-Control"] = "no-store"
        return response

    @post("/tokens/{token_id:str}/revoke/", include_in_schema=False)
    async def revoke_token(
        request: Request[Any, Any, Any], context: Context, caller: Who, token_id: FromPath[str]
    ) -> Redirect:
        require_login(caller)
        await read_form(request, caller, pages.secret)
        revoked = await context.db.run(tokens.revoke_token, caller, token_id)
        context.access_cache.forget(revoked.id)
        return see_other(f"{pages.ui}/tokens/", "revoked")

    return [new_token, create_token, revoke_token]

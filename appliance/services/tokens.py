"""API tokens: mint them for callers (only ever narrower than the caller), record them, list
and revoke them.

Every token Kiln signs has a row (its ``jti``): a token without one is refused, so revoking a
row ends the token everywhere at once. Rules of ``POST /api/v1/token/`` (conda-store's, with
its hole closed): anonymous callers cannot mint; the new token's bindings default to the
caller's effective bindings and must be covered by them; its expiry defaults to the caller's
own and cannot be later.

Listing and revoking (``GET /api/v1/token/``, ``DELETE /api/v1/token/{id}/``): a caller manages
the tokens of their own account (a token minted without an account, such as ``kiln token
create``'s, sees only itself); an admin account, or a token holding every permission on
``*/*``, manages every token.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from appliance.auth.tokens import SCOPED, TokenClaims, mint
from appliance.common.errors import KilnError
from appliance.config.auth import ARN_PATTERN, PERMISSIONS
from appliance.db.models import ApiToken, User
from appliance.schemas import api as wire
from appliance.services.access import Access, Caller, Forbidden
from appliance.services.listing import Listing, PageRequest, paginate

#: Lifetime of a token when neither the request nor the caller's own token limits it.
DEFAULT_TOKEN_LIFETIME = timedelta(days=1)


class TokenRefused(KilnError):
    """The token cannot be minted; the message says why.

    A 400, as in conda-store: its client reads the message of a refused ``token`` command only
    from a 400 (and crashes on any other status), so anonymous callers and requests for more
    than the caller holds get 400 rather than 401/403.
    """

    code = "token_refused"


class TokenNotFound(KilnError):
    """No such token."""

    code = "not_found"


@dataclass(frozen=True)
class Signer:
    """How tokens are signed (the secret and algorithm of ``AuthenticationBackend``)."""

    secret: str
    algorithm: str = "HS256"


def record_token(session: Session, claims: TokenClaims, *, name: str, user_id: int | None) -> None:
    """Store the token's id and permissions (never the token itself)."""
    session.add(
        ApiToken(
            id=uuid.UUID(claims.token_id),
            user_id=user_id,
            name=name,
            primary_namespace=claims.primary_namespace,
            role_bindings={pattern: list(roles) for pattern, roles in claims.role_bindings.items()},
            expires_on=claims.expires_at,
            created_on=claims.issued_at,
        )
    )


def _check_bindings(
    bindings: Mapping[str, Iterable[str]], roles: frozenset[str]
) -> dict[str, frozenset[str]]:
    checked: dict[str, frozenset[str]] = {}
    for pattern, names in bindings.items():
        if not isinstance(pattern, str) or not ARN_PATTERN.match(pattern):
            raise KilnError(
                f"role binding {pattern!r}: expected '<namespace>/<environment>' ('*' matches "
                "any characters, e.g. 'default/*')"
            )
        if isinstance(names, str):
            names = [names]
        listed = [str(name) for name in names]
        unknown = [name for name in listed if name not in roles]
        if unknown or not listed:
            raise KilnError(
                f"role binding {pattern!r}: unknown role {', '.join(unknown) or '(none)'}; "
                f"allowed: {', '.join(sorted(roles))}"
            )
        checked[pattern] = frozenset(listed)
    return checked


def mint_token(
    session: Session,
    caller: Caller,
    signer: Signer,
    *,
    primary_namespace: str | None = None,
    role_bindings: Mapping[str, Iterable[str]] | None = None,
    expiration: datetime | None = None,
    name: str = "",
) -> wire.IssuedToken:
    """A new scoped token for the caller, at most as powerful and long-lived as the caller."""
    access = caller.access(session)
    if not access.authenticated:
        raise TokenRefused("anonymous callers cannot create tokens: log in first")
    now = datetime.now(UTC).replace(microsecond=0)
    requested = (
        dict(access.bindings)
        if role_bindings is None
        else _check_bindings(role_bindings, access.policy.roles)
    )
    uncovered = access.policy.uncovered(access.bindings, requested)
    if uncovered:
        raise TokenRefused(
            "a token cannot grant more than its creator holds: " + "; ".join(uncovered)
        )
    limit = access.expires_at
    if expiration is None:
        expiration = limit if limit is not None else now + DEFAULT_TOKEN_LIFETIME
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    if expiration <= now:
        raise KilnError(f"expiration {expiration.isoformat()} is in the past")
    if limit is not None and expiration > limit:
        raise KilnError(
            f"expiration {expiration.isoformat()} is later than your own token's "
            f"({limit.isoformat()}); a token cannot outlive its creator"
        )
    claims = TokenClaims(
        role_bindings={pattern: tuple(sorted(roles)) for pattern, roles in requested.items()},
        expires_at=expiration.replace(microsecond=0),
        primary_namespace=primary_namespace or access.primary_namespace,
        subject=access.username,
        issued_at=now,
        kind=SCOPED,
    )
    record_token(session, claims, name=name[:255], user_id=access.user_id)
    return wire.IssuedToken(
        token=mint(claims, secret=signer.secret, algorithm=signer.algorithm),
        id=claims.token_id,
        expiration=claims.expires_at,
    )


#: Sort keys of ``GET /api/v1/token/`` (default: newest first).
TOKEN_SORT_KEYS = ("created_on", "expires_on", "last_used")


def manages_every_token(access: Access) -> bool:
    """Whether the caller may list and revoke every user's tokens."""
    return access.is_admin or access.held_everywhere() >= frozenset(PERMISSIONS)


def _manageable(access: Access, *, every_user: bool) -> Select[Any]:
    """``(ApiToken, username)`` rows the caller may see: their own, or ``every_user``'s."""
    statement = select(ApiToken, User.username).outerjoin(User, User.id == ApiToken.user_id)
    if every_user:
        return statement
    if access.user_id is not None:
        return statement.where(ApiToken.user_id == access.user_id)
    return statement.where(ApiToken.id == _token_uuid(access.token_id))


def _token_uuid(token_id: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(token_id))
    except ValueError:
        return None


def _info(row: ApiToken, username: str | None, access: Access) -> wire.TokenInfo:
    return wire.TokenInfo(
        id=str(row.id),
        name=row.name,
        username=username,
        primary_namespace=row.primary_namespace,
        role_bindings={pattern: list(roles) for pattern, roles in row.role_bindings.items()},
        created_on=row.created_on,
        expires_on=row.expires_on,
        last_used=row.last_used,
        revoked_on=row.revoked_on,
        current=str(row.id) == access.token_id,
    )


def list_tokens(
    session: Session, caller: Caller, page: PageRequest, *, every_user: bool = False
) -> Listing[wire.TokenInfo]:
    """The caller's tokens (``every_user``: everyone's, for token managers), revoked and expired
    ones included, newest first unless sorted otherwise."""
    access = caller.access(session)
    access.require_authenticated()
    if every_user and not manages_every_token(access):
        raise Forbidden(
            "only admins can list every user's tokens; leave out all=true to list yours"
        )
    statement = _manageable(access, every_user=every_user)
    if not page.sort_by:
        page = PageRequest(page=page.page, size=page.size, sort_by=("created_on",), descending=True)
    rows, count = paginate(
        session,
        statement,
        page,
        sort_columns={
            "created_on": [ApiToken.created_on],
            "expires_on": [ApiToken.expires_on],
            "last_used": [ApiToken.last_used],
        },
        default_sort=["created_on"],
        tiebreak=ApiToken.id,
    )
    items = [_info(row[0], row[1], access) for row in rows]
    return Listing(items=items, count=count, page=page.page, size=page.size)


def revoke_token(session: Session, caller: Caller, token_id: str) -> wire.TokenInfo:
    """Revoke one of the caller's tokens (any token, for token managers), at once: the next
    request carrying it gets a 401. Revoking a revoked token changes nothing."""
    access = caller.access(session)
    access.require_authenticated()
    wanted = _token_uuid(token_id)
    if wanted is None:
        raise KilnError(
            f"{token_id[:80]!r} is not a token id: use an id listed by GET /api/v1/token/"
        )
    statement = _manageable(access, every_user=manages_every_token(access))
    row = session.execute(
        statement.where(ApiToken.id == wanted).with_for_update(of=ApiToken)
    ).first()
    if row is None:
        raise TokenNotFound(f"no token {wanted} among the tokens you can manage")
    token, username = row
    if token.revoked_on is None:
        session.execute(
            update(ApiToken).where(ApiToken.id == wanted).values(revoked_on=datetime.now(UTC))
        )
        session.refresh(token)
    return _info(token, username, access)

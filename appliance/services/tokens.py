"""API tokens: mint them for callers (only ever narrower than the caller), record them, list
and revoke them.

Every token Kiln signs has a row (its ``jti``): a token without one is refused, so revoking a
row ends the token everywhere at once. Rules of ``POST /api/v1/token/`` (conda-store's, with
its hole closed): anonymous callers cannot mint; the new token's bindings default to the
caller's effective bindings and must be covered by them; its expiry defaults to the caller's
own and cannot be later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from appliance.auth.tokens import SCOPED, TokenClaims, mint
from appliance.common.errors import KilnError
from appliance.config.auth import ARN_PATTERN
from appliance.db.models import ApiToken
from appliance.schemas import api as wire
from appliance.services.access import Caller, Forbidden, Unauthenticated

#: Lifetime of a token when neither the request nor the caller's own token limits it.
DEFAULT_TOKEN_LIFETIME = timedelta(days=1)


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
        raise Unauthenticated("anonymous callers cannot create tokens: log in first")
    now = datetime.now(UTC).replace(microsecond=0)
    requested = (
        dict(access.bindings)
        if role_bindings is None
        else _check_bindings(role_bindings, access.policy.roles)
    )
    uncovered = access.policy.uncovered(access.bindings, requested)
    if uncovered:
        raise Forbidden("a token cannot grant more than its creator holds: " + "; ".join(uncovered))
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

"""API tokens: JWTs signed with Kiln's secret, carrying their own permissions.

A token says who holds it (``sub``), its id (``jti``, so it can be listed and revoked), its
primary namespace, its kind, its role bindings (``{"<namespace>/<environment>": ["viewer" |
"developer" | "admin"]}``, glob patterns as in conda-store) and when it expires. Verification
accepts only the configured HMAC algorithm: ``alg=none`` and tokens signed with another key are
refused.

Two kinds: a ``session`` token is what logging in gives a person (their rights are worked out
from their account, the default bindings and the role mappings at each request); a ``token``
(the default: ``kiln token create``, ``POST /api/v1/token/``) grants exactly the bindings it
carries, which were checked to be within its minter's rights when it was made.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt

from appliance.common.errors import KilnError

#: The kinds of token (see the module docstring).
SESSION, SCOPED = "session", "token"

#: Roles a binding may name (``editor`` is conda-store's alias of ``developer``).
ROLES = ("viewer", "developer", "editor", "admin")


class InvalidToken(KilnError):
    """The token is not valid."""

    code = "invalid_token"


@dataclass(frozen=True)
class TokenClaims:
    """What a token grants."""

    role_bindings: Mapping[str, tuple[str, ...]]
    expires_at: datetime
    primary_namespace: str = "default"
    subject: str | None = None
    token_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    kind: str = SCOPED


def check_role_bindings(bindings: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Validate ``{"ns/env": [roles]}``; return it normalized. Raises :class:`KilnError`."""
    checked: dict[str, tuple[str, ...]] = {}
    for pattern, roles in bindings.items():
        namespace, slash, environment = pattern.partition("/")
        if not slash or not namespace or not environment or "/" in environment:
            raise KilnError(
                f"role binding {pattern!r}: expected NAMESPACE/ENVIRONMENT (globs allowed, "
                "e.g. 'default/*' or '*/*')"
            )
        names = tuple(dict.fromkeys(roles))
        unknown = [role for role in names if role not in ROLES]
        if unknown or not names:
            raise KilnError(
                f"role binding {pattern!r}: unknown role {', '.join(unknown) or '(none)'}; "
                f"allowed: {', '.join(ROLES)}"
            )
        checked[pattern] = names
    return checked


def binding_covers(pattern: str, namespace: str, environment: str) -> bool:
    """Whether the binding pattern applies to ``namespace/environment``."""
    return fnmatch.fnmatchcase(f"{namespace}/{environment}", pattern)


def mint(claims: TokenClaims, *, secret: str, algorithm: str = "HS256") -> str:
    """The signed token for ``claims``."""
    payload = {
        "jti": claims.token_id,
        "primary_namespace": claims.primary_namespace,
        "kind": claims.kind,
        "role_bindings": {k: list(v) for k, v in claims.role_bindings.items()},
        "iat": int(claims.issued_at.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    if claims.subject is not None:
        payload["sub"] = claims.subject  # pyjwt refuses a "sub" that is not a string
    return jwt.encode(payload, secret, algorithm=algorithm)


def verify(token: str, *, secret: str, algorithm: str = "HS256") -> TokenClaims:
    """The claims of ``token``; raises :class:`InvalidToken` saying why it is refused."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[algorithm],
            options={"require": ["exp", "jti", "role_bindings"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired; create a new one") from None
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"the token is not valid: {error}") from None
    try:
        bindings = check_role_bindings(payload["role_bindings"])
    except KilnError as error:
        raise InvalidToken(f"the token is not valid: {error.message}") from None
    return TokenClaims(
        role_bindings=bindings,
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        primary_namespace=str(payload.get("primary_namespace") or "default"),
        subject=payload.get("sub"),
        token_id=str(payload["jti"]),
        issued_at=datetime.fromtimestamp(payload.get("iat", payload["exp"]), UTC),
        kind=SESSION if payload.get("kind") == SESSION else SCOPED,
    )


def parse_lifetime(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (or plain seconds) as a duration; at least a minute."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise KilnError(
            f"lifetime {text!r}: expected a number with a unit, e.g. 30m, 12h, 7d or 2w"
        ) from None
    if seconds < 60:
        raise KilnError(f"lifetime {text!r}: a token must live at least one minute")
    return timedelta(seconds=seconds)

"""API tokens: record the tokens Kiln mints, so they can be listed and revoked."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from appliance.auth.tokens import TokenClaims
from appliance.db.models import ApiToken


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

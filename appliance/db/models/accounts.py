"""Local accounts and API tokens.

Users are Kiln's default authentication (DESIGN.md): a local account has an scrypt password hash;
an account created by an OAuth login has none. User names are unique without regard to case
(``Alice`` and ``alice`` are one account): look them up with ``func.lower(User.username) ==
name.lower()``, which the unique index serves.

An :class:`ApiToken` row is the server-side record of a signed token (its ``id`` is the JWT's
``jti``): it lets an admin list and revoke tokens and see when one was last used. Tokens minted
without a user (``kiln token create`` for automation) have no ``user_id``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.db.models.base import Base, Identifier, created_on_column


class User(Base):
    """A person (or service) who logs in to Kiln."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    #: scrypt hash in the auth layer's encoding; None for accounts that log in through OAuth.
    password_hash: Mapped[str | None]
    is_admin: Mapped[bool] = mapped_column(server_default=text("false"))
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))
    created_on: Mapped[datetime] = created_on_column()
    last_login: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", passive_deletes=True)

    __table_args__ = (
        Index("uq_user_account_username_lower", func.lower(text("username")), unique=True),
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r}>"


class ApiToken(Base):
    """An issued API token: who it is for, what it grants, and whether it still works."""

    __tablename__ = "api_token"

    #: The token's ``jti`` claim.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    #: What the token is for, as its owner named it ("CI", "laptop").
    name: Mapped[str] = mapped_column(String(255), server_default="")
    primary_namespace: Mapped[str | None] = mapped_column(Identifier)
    #: ``{"<ARN pattern>": ["<role>", ...]}`` as in conda-store's tokens.
    role_bindings: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    #: None: the token does not expire.
    expires_on: Mapped[datetime | None]
    created_on: Mapped[datetime] = created_on_column()
    last_used: Mapped[datetime | None]
    revoked_on: Mapped[datetime | None]

    user: Mapped[User | None] = relationship(back_populates="tokens")

    __table_args__ = (
        # A user's tokens, newest first.
        Index("ix_api_token_user_id_created_on", "user_id", "created_on"),
        # Pruning expired tokens.
        Index("ix_api_token_expires_on", "expires_on"),
    )

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} user={self.user_id} {self.name!r}>"

"""Settings stored in the database at three levels (conda-store's ``keyvaluestore``).

``scope`` is ``""`` for the global level, ``"<namespace>"`` for a namespace and
``"<namespace>/<environment>"`` for an environment; a lookup reads the (at most three) scopes
that apply and the most specific value of each key wins (conda-store-api.md §7.2). Scopes are
names, not foreign keys, so settings can be written for a namespace before it exists, as
conda-store allows; deleting a namespace deletes its scopes (``scope = ns OR scope LIKE
'ns/%'``, served by the unique index thanks to the C collation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from appliance.db.models.base import Base, Identifier, created_on_column, now


class Setting(Base):
    """One setting key at one level, with its JSON value."""

    __tablename__ = "setting"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(511, collation="C"))
    key: Mapped[str] = mapped_column(Identifier)
    value: Mapped[Any] = mapped_column(JSONB)
    created_on: Mapped[datetime] = created_on_column()
    updated_on: Mapped[datetime] = mapped_column(server_default=now(), onupdate=now())

    __table_args__ = (UniqueConstraint("scope", "key"),)

    def __repr__(self) -> str:
        return f"<Setting {self.scope!r} {self.key}={self.value!r}>"

"""Which version of Procrastinate's schema the database holds.

Procrastinate keeps no record of its own: ``kiln migrate`` writes one here when it applies the
schema, so that a later Kiln with a newer Procrastinate applies just the migration scripts that
version added (see :mod:`appliance.db.migrate`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.db.models.base import Base, now


class QueueSchema(Base):
    """The single row recording the applied Procrastinate schema."""

    __tablename__ = "queue_schema"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    #: The Procrastinate version whose ``schema.sql`` (or migrations) were applied last.
    procrastinate_version: Mapped[str] = mapped_column(String(64))
    #: The newest of Procrastinate's migration scripts the schema includes (file name).
    last_migration: Mapped[str | None] = mapped_column(String(255))
    applied_on: Mapped[datetime] = mapped_column(server_default=now(), onupdate=now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

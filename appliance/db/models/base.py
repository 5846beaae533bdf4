"""The declarative base every Kiln table derives from, and the column types they share.

- Constraint and index names follow :data:`NAMING_CONVENTION`, so a future migration can name
  (and drop) any constraint without looking it up in a live database. Indexes that carry a
  meaning (partial, trigram, expression) are named explicitly in their table's module.
- ``int`` columns are ``BIGINT``, ``datetime`` columns ``timestamp with time zone`` (aware
  datetimes; conda-store stored naive UTC), ``dict``/``list`` columns ``JSONB``.
- Identifier-like text (namespace, environment and package names, channel URLs, setting scopes)
  uses the ``"C"`` collation (:data:`Identifier`): byte order is the same on every server and
  every operating system release (an OS upgrade changing glibc's collation cannot corrupt these
  indexes), and a btree index then serves ``LIKE 'prefix%'`` filters, which the API's ARN
  patterns and package prefix searches are.
- Server-side defaults are read back with ``RETURNING`` at insert (``eager_defaults``), so an
  object's ``created_on`` is loaded after a flush without a second query; this also keeps
  :class:`~sqlalchemy.ext.asyncio.AsyncSession` users away from implicit lazy loads.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Enum, MetaData, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.sql.elements import ColumnElement

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Names and other identifiers: at most 255 characters, compared byte by byte.
Identifier = String(255, collation="C")


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of Kiln's tables (``Base.metadata`` is what Alembic compares against)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (read by SQLAlchemy at class creation)
        int: BigInteger(),
        str: Text(),
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB(),
        list[Any]: JSONB(),
    }
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012


def now() -> ColumnElement[datetime]:
    """``now()`` on the server: the start of the current transaction."""
    return func.now()


def created_on_column() -> Any:
    """A ``created_on`` column set by the server when the row is inserted."""
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=now())


def text_enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    """A :class:`~enum.StrEnum` stored as its values in ``VARCHAR`` with a CHECK constraint.

    ``name`` names the CHECK constraint (``ck_<table>_<name>``). Adding a member later is a
    migration that replaces that constraint; the column is wide enough for new names.
    """
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )

"""Namespaces, the environments in them, and who may use them (role mappings v1 and v2).

Soft delete: deleting a namespace or an environment sets ``deleted_on`` and queues the physical
deletion (files, artifacts, then the row). A name is unique among rows that are not deleted, so
a name can be used again at once while the old rows are still being cleaned up. Lookups by name
must therefore filter ``deleted_on IS NULL`` (:meth:`Namespace.active`, :meth:`Environment.active`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from appliance.db.models.base import Base, Identifier, created_on_column

if TYPE_CHECKING:
    from appliance.db.models.builds import Build

_NOT_DELETED = text("deleted_on IS NULL")


class Namespace(Base):
    """A group of environments with its own permissions (conda-store's ``namespace``)."""

    __tablename__ = "namespace"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Identifier)
    #: Free-form JSON object the API lets admins set (conda-store's ``metadata_``).
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata_", JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    created_on: Mapped[datetime] = created_on_column()
    deleted_on: Mapped[datetime | None]

    environments: Mapped[list[Environment]] = relationship(
        back_populates="namespace", passive_deletes=True, order_by="Environment.name"
    )
    role_mappings: Mapped[list[NamespaceRoleMapping]] = relationship(
        back_populates="namespace",
        passive_deletes=True,
        cascade="all, delete-orphan",
        order_by="NamespaceRoleMapping.id",
    )

    __table_args__ = (
        Index("uq_namespace_name_active", "name", unique=True, postgresql_where=_NOT_DELETED),
        # `search` filters on a substring of the namespace name.
        Index(
            "ix_namespace_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    @classmethod
    def active(cls) -> ColumnElement[bool]:
        """Filter for namespaces that are not (soft-)deleted."""
        return cls.deleted_on.is_(None)

    def __repr__(self) -> str:
        return f"<Namespace {self.id} {self.name!r}>"


class Environment(Base):
    """A named environment in a namespace; every change to it is a new :class:`Build`."""

    __tablename__ = "environment"

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Identifier)
    description: Mapped[str | None]
    #: The build ``envs/<name>`` points at (conda-store sets it when the first build is queued).
    current_build_id: Mapped[int | None] = mapped_column(
        ForeignKey(
            "build.id",
            ondelete="SET NULL",
            use_alter=True,
            name="fk_environment_current_build_id_build",
        )
    )
    created_on: Mapped[datetime] = created_on_column()
    deleted_on: Mapped[datetime | None]

    namespace: Mapped[Namespace] = relationship(back_populates="environments")
    builds: Mapped[list[Build]] = relationship(
        back_populates="environment",
        foreign_keys="Build.environment_id",
        passive_deletes=True,
        order_by="Build.id",
    )
    # post_update: environment and build point at each other; the environment row is inserted
    # first and its current build set by a second UPDATE in the same flush.
    current_build: Mapped[Build | None] = relationship(
        foreign_keys=[current_build_id], post_update=True
    )

    __table_args__ = (
        Index(
            "uq_environment_namespace_id_name_active",
            "namespace_id",
            "name",
            unique=True,
            postgresql_where=_NOT_DELETED,
        ),
        # Builds are listed by namespace and environment name, soft-deleted ones included.
        Index("ix_environment_namespace_id_name", "namespace_id", "name"),
        Index("ix_environment_name", "name"),
        Index("ix_environment_current_build_id", "current_build_id"),
        Index(
            "ix_environment_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    @classmethod
    def active(cls) -> ColumnElement[bool]:
        """Filter for environments that are not (soft-)deleted."""
        return cls.deleted_on.is_(None)

    def __repr__(self) -> str:
        return f"<Environment {self.id} namespace={self.namespace_id} {self.name!r}>"


class NamespaceRoleMapping(Base):
    """Role mappings v1: a user whose *primary namespace* is ``namespace`` gets ``role`` on
    every environment matching the ARN pattern ``entity`` (conda-store's
    ``namespace_role_mapping``). ``role`` is a role name of ``AuthorizationBackend.role_mappings``
    (conda-store stores ``editor`` as ``developer``; both are accepted)."""

    __tablename__ = "namespace_role_mapping"

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespace.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(Identifier)
    role: Mapped[str] = mapped_column(String(255))

    namespace: Mapped[Namespace] = relationship(back_populates="role_mappings")

    __table_args__ = (UniqueConstraint("namespace_id", "entity", "role"),)


class NamespaceRoleMappingV2(Base):
    """Role mappings v2: users whose primary namespace is ``other_namespace`` get ``role`` on
    ``<namespace>/*`` (conda-store's ``namespace_role_mapping_v2``; one role per pair)."""

    __tablename__ = "namespace_role_mapping_v2"

    id: Mapped[int] = mapped_column(primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespace.id", ondelete="CASCADE"))
    other_namespace_id: Mapped[int] = mapped_column(ForeignKey("namespace.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(255))

    namespace: Mapped[Namespace] = relationship(foreign_keys=[namespace_id])
    other_namespace: Mapped[Namespace] = relationship(foreign_keys=[other_namespace_id])

    __table_args__ = (
        UniqueConstraint("namespace_id", "other_namespace_id"),
        # A caller's bindings are found from their primary namespace.
        Index("ix_namespace_role_mapping_v2_other_namespace_id", "other_namespace_id"),
    )

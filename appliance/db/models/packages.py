"""The package index: conda channels, packages and package builds (for search and for the
packages a build installed).

Rows come from two places: the periodic channel refresh (repodata of the indexed channels) and
the builds themselves (every installed package is recorded, indexed channel or not). A package
is ``(channel, name, version)``; a package build is one file of it in one subdir, identified by
``(channel, subdir, filename)`` as in the channel's repodata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.db.models.base import Base, Identifier, created_on_column

_EMPTY_LIST = text("'[]'::jsonb")


class CondaChannel(Base):
    """A conda channel, by its normalized URL (``https://conda.anaconda.org/conda-forge``)."""

    __tablename__ = "conda_channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(1024, collation="C"), unique=True)
    #: When its repodata was last read into the index (None: never).
    last_update: Mapped[datetime | None]
    created_on: Mapped[datetime] = created_on_column()

    packages: Mapped[list[CondaPackage]] = relationship(
        back_populates="channel", passive_deletes=True
    )


class CondaPackage(Base):
    """A package version in a channel, with the metadata search shows."""

    __tablename__ = "conda_package"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("conda_channel.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Identifier)
    version: Mapped[str] = mapped_column(Identifier)
    license: Mapped[str | None]
    license_family: Mapped[str | None]
    summary: Mapped[str | None]
    description: Mapped[str | None]

    channel: Mapped[CondaChannel] = relationship(back_populates="packages")
    builds: Mapped[list[CondaPackageBuild]] = relationship(
        back_populates="package", passive_deletes=True
    )

    __table_args__ = (
        # Also the `channel` filter and the channel, name, version sort.
        UniqueConstraint("channel_id", "name", "version"),
        # `exact` name match, `distinct_on` name/version, `name LIKE 'prefix%'` (C collation).
        Index("ix_conda_package_name_version", "name", "version"),
        # `search`: a substring of the name.
        Index(
            "ix_conda_package_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    def __repr__(self) -> str:
        return f"<CondaPackage {self.id} {self.name}={self.version} channel={self.channel_id}>"


class CondaPackageBuild(Base):
    """One file of a package for one subdir (``numpy-2.1.0-py311h....conda`` in linux-64)."""

    __tablename__ = "conda_package_build"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("conda_package.id", ondelete="CASCADE"))
    #: The package's channel, repeated so a channel's files are found without a join.
    channel_id: Mapped[int] = mapped_column(ForeignKey("conda_channel.id", ondelete="CASCADE"))
    subdir: Mapped[str] = mapped_column(String(32, collation="C"))
    filename: Mapped[str] = mapped_column(String(512, collation="C"))
    build: Mapped[str] = mapped_column(String(255))
    build_number: Mapped[int] = mapped_column(Integer)
    depends: Mapped[list[Any]] = mapped_column(server_default=_EMPTY_LIST)
    constrains: Mapped[list[Any]] = mapped_column(server_default=_EMPTY_LIST)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    #: The build time from repodata (``timestamp``, milliseconds there).
    timestamp: Mapped[datetime | None]

    package: Mapped[CondaPackage] = relationship(back_populates="builds")
    channel: Mapped[CondaChannel] = relationship()

    __table_args__ = (
        UniqueConstraint("channel_id", "subdir", "filename"),
        Index("ix_conda_package_build_package_id_subdir", "package_id", "subdir"),
    )

    def __repr__(self) -> str:
        return f"<CondaPackageBuild {self.id} {self.subdir}/{self.filename}>"

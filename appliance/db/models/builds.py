"""Specifications, builds, their artifacts and what each build installed.

A :class:`Specification` is content-addressed: its ``sha256`` is the one
:meth:`appliance.schemas.specification.EnvironmentSpec.sha256` (or
:meth:`~appliance.schemas.lockfile.LockfileSpec.sha256`) computes, never recomputed here, and
one row is shared by every build of that content in any environment.

A :class:`Build` is immutable history: a rebuild or a changed spec is a new row. Its
``build_key`` names its prefix directory and its artifacts (conda-store's key versions 1-3,
:attr:`appliance.builder.pipeline.BuildRequest.build_key`); since the key contains the build id,
allocate the id first with :func:`next_build_id`. The queue fields (``job_id``, ``worker_id``,
``worker_name``, ``cancel_requested_on``) tie a row to the Procrastinate job running it, for
cancel and for recovering builds whose worker died.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models.base import Base, Identifier, created_on_column, now, text_enum

if TYPE_CHECKING:
    from appliance.db.models.namespaces import Environment
    from appliance.db.models.packages import CondaPackageBuild


class Specification(Base):
    """An environment.yaml or lockfile as submitted, validated and normalized."""

    __tablename__ = "specification"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Identifier)
    #: ``EnvironmentSpec.to_dict()`` / ``LockfileSpec.to_dict()``; lists keep their order.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    is_lockfile: Mapped[bool] = mapped_column(server_default=text("false"))
    created_on: Mapped[datetime] = created_on_column()

    builds: Mapped[list[Build]] = relationship(back_populates="specification")

    def __repr__(self) -> str:
        return f"<Specification {self.id} {self.name!r} {self.sha256[:12]}>"


#: Conda package builds installed in a build (conda-store's ``build_conda_package_build``).
build_conda_package_build = Table(
    "build_conda_package_build",
    Base.metadata,
    Column("build_id", ForeignKey("build.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "conda_package_build_id",
        ForeignKey(
            "conda_package_build.id",
            ondelete="CASCADE",
            name="fk_build_conda_package_build_conda_package_build_id",
        ),
        primary_key=True,
    ),
    # Which builds contain a package (the `packages` filter of builds and environments).
    Index("ix_build_conda_package_build_conda_package_build_id", "conda_package_build_id"),
)


class Build(Base):
    """One attempt to build an environment from a specification."""

    __tablename__ = "build"

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    specification_id: Mapped[int] = mapped_column(
        ForeignKey("specification.id", ondelete="RESTRICT")
    )
    status: Mapped[BuildStatus] = mapped_column(
        text_enum(BuildStatus, "status"), server_default=BuildStatus.QUEUED.value
    )
    #: Why the build failed or was canceled, in words a user can act on (shown by UI and API).
    status_info: Mapped[str | None]
    scheduled_on: Mapped[datetime] = mapped_column(server_default=now())
    started_on: Mapped[datetime | None]
    ended_on: Mapped[datetime | None]
    #: Bytes on disk of the built prefix (0 until completed, and after deletion).
    size: Mapped[int] = mapped_column(server_default=text("0"))
    build_key: Mapped[str] = mapped_column(String(255), unique=True)
    key_version: Mapped[int] = mapped_column(SmallInteger, server_default=text("2"))
    #: The conda subdir the prefix was installed for (``linux-64``), set when building starts.
    platform: Mapped[str | None] = mapped_column(String(32))
    deleted_on: Mapped[datetime | None]
    #: ``procrastinate_jobs.id`` of the job building it (no foreign key: old jobs are pruned).
    job_id: Mapped[int | None]
    #: ``procrastinate_workers.id`` of the worker that took the job, and a human-readable name
    #: for it (``host:pid``); both cleared when the build ends.
    worker_id: Mapped[int | None]
    worker_name: Mapped[str | None] = mapped_column(String(255))
    #: Set when a cancel is requested; the build becomes CANCELED once its work has stopped.
    cancel_requested_on: Mapped[datetime | None]

    environment: Mapped[Environment] = relationship(
        back_populates="builds", foreign_keys=[environment_id]
    )
    specification: Mapped[Specification] = relationship(back_populates="builds")
    artifacts: Mapped[list[BuildArtifact]] = relationship(
        back_populates="build",
        passive_deletes=True,
        cascade="all, delete-orphan",
        order_by="BuildArtifact.id",
    )
    package_builds: Mapped[list[CondaPackageBuild]] = relationship(
        secondary=build_conda_package_build, passive_deletes=True
    )
    pip_packages: Mapped[list[BuildPipPackage]] = relationship(
        back_populates="build",
        passive_deletes=True,
        cascade="all, delete-orphan",
        order_by="BuildPipPackage.name",
    )

    __table_args__ = (
        # Builds of one environment, newest first (the UI's builds dropdown).
        Index("ix_build_environment_id_scheduled_on", "environment_id", "scheduled_on"),
        Index("ix_build_specification_id", "specification_id"),
        # `status` filter with the default sort by id; also finds QUEUED/BUILDING builds.
        Index("ix_build_status_id", "status", "id"),
        Index("ix_build_scheduled_on", "scheduled_on"),
        Index("ix_build_started_on", "started_on"),
        Index("ix_build_ended_on", "ended_on"),
        Index("ix_build_job_id", "job_id", postgresql_where=text("job_id IS NOT NULL")),
    )

    def __repr__(self) -> str:
        return f"<Build {self.id} {self.status} {self.build_key!r}>"


def next_build_id(session: Session) -> int:
    """Reserve the id of a build about to be inserted (its build key contains the id)."""
    sequence_value = select(text("nextval(pg_get_serial_sequence('build', 'id'))"))
    return int(session.execute(sequence_value).scalar_one())


class BuildArtifact(Base):
    """Something a build produced, found by ``key`` in artifact storage (or on disk)."""

    __tablename__ = "build_artifact"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("build.id", ondelete="CASCADE"))
    artifact_type: Mapped[BuildArtifactType] = mapped_column(
        text_enum(BuildArtifactType, "artifact_type")
    )
    #: Storage key (``lockfile/<build key>.yml``), or the prefix path for DIRECTORY.
    key: Mapped[str]
    #: Bytes stored, when known.
    size: Mapped[int | None]
    created_on: Mapped[datetime] = created_on_column()

    build: Mapped[Build] = relationship(back_populates="artifacts")

    __table_args__ = (
        # The `artifact` filter of builds and environments, and a build's artifact of a type.
        Index("ix_build_artifact_build_id_artifact_type", "build_id", "artifact_type"),
        Index("ix_build_artifact_key", "key"),
    )


class BuildPipPackage(Base):
    """A Python package pip installed in a build (conda-store recorded none).

    pip packages are not indexed from a channel, so each build keeps its own rows: the
    normalized project name (PEP 503), the version, and where it came from when known.
    """

    __tablename__ = "build_pip_package"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("build.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Identifier)
    version: Mapped[str] = mapped_column(String(255))
    #: The index URL or direct URL it was installed from.
    source: Mapped[str | None]
    sha256: Mapped[str | None] = mapped_column(String(64))

    build: Mapped[Build] = relationship(back_populates="pip_packages")

    __table_args__ = (
        UniqueConstraint("build_id", "name"),
        Index("ix_build_pip_package_name", "name"),
    )

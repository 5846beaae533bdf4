"""Initial schema.

Namespaces, environments, specifications, builds, artifacts, the package index, settings,
role mappings, accounts, API tokens, storage samples, and the queue schema record.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 19:09:35
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=255, collation="C")
NOW = sa.text("now()")
NOT_DELETED = sa.text("deleted_on IS NULL")


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.BigInteger(), nullable=False)


def _timestamp(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=NOW if default else None,
        nullable=nullable,
    )


def _jsonb(name: str, default: str | None = None) -> sa.Column[Any]:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text(default) if default else None,
        nullable=False,
    )


def _text_enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _trigram_index(name: str, table: str) -> None:
    """A GIN trigram index on ``table.name`` (substring search)."""
    op.create_index(
        name, table, ["name"], postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}
    )


def upgrade() -> None:
    # Substring search on names (`search` filters) uses trigram indexes. pg_trgm is a trusted
    # contrib extension: the database owner can create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    # --- namespaces, permissions, settings ------------------------------------------------
    op.create_table(
        "namespace",
        _id(),
        sa.Column("name", NAME, nullable=False),
        _jsonb("metadata_", "'{}'::jsonb"),
        _timestamp("created_on", nullable=False, default=True),
        _timestamp("deleted_on"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_namespace")),
    )
    op.create_index(
        "uq_namespace_name_active", "namespace", ["name"], unique=True, postgresql_where=NOT_DELETED
    )
    _trigram_index("ix_namespace_name_trgm", "namespace")

    op.create_table(
        "namespace_role_mapping",
        _id(),
        sa.Column("namespace_id", sa.BigInteger(), nullable=False),
        sa.Column("entity", NAME, nullable=False),
        sa.Column("role", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_namespace_role_mapping_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_namespace_role_mapping")),
        sa.UniqueConstraint(
            "namespace_id",
            "entity",
            "role",
            name=op.f("uq_namespace_role_mapping_namespace_id_entity_role"),
        ),
    )
    op.create_table(
        "namespace_role_mapping_v2",
        _id(),
        sa.Column("namespace_id", sa.BigInteger(), nullable=False),
        sa.Column("other_namespace_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_namespace_role_mapping_v2_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["other_namespace_id"],
            ["namespace.id"],
            name=op.f("fk_namespace_role_mapping_v2_other_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_namespace_role_mapping_v2")),
        sa.UniqueConstraint(
            "namespace_id",
            "other_namespace_id",
            name=op.f("uq_namespace_role_mapping_v2_namespace_id_other_namespace_id"),
        ),
    )
    op.create_index(
        "ix_namespace_role_mapping_v2_other_namespace_id",
        "namespace_role_mapping_v2",
        ["other_namespace_id"],
    )

    op.create_table(
        "setting",
        _id(),
        sa.Column("scope", sa.String(length=511, collation="C"), nullable=False),
        sa.Column("key", NAME, nullable=False),
        _jsonb("value"),
        _timestamp("created_on", nullable=False, default=True),
        _timestamp("updated_on", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_setting_scope_key")),
    )

    # --- environments, specifications, builds ---------------------------------------------
    op.create_table(
        "environment",
        _id(),
        sa.Column("namespace_id", sa.BigInteger(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        # Its foreign key to build is added once the build table exists.
        sa.Column("current_build_id", sa.BigInteger(), nullable=True),
        _timestamp("created_on", nullable=False, default=True),
        _timestamp("deleted_on"),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespace.id"],
            name=op.f("fk_environment_namespace_id_namespace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment")),
    )
    op.create_index(
        "uq_environment_namespace_id_name_active",
        "environment",
        ["namespace_id", "name"],
        unique=True,
        postgresql_where=NOT_DELETED,
    )
    op.create_index("ix_environment_namespace_id_name", "environment", ["namespace_id", "name"])
    op.create_index("ix_environment_name", "environment", ["name"])
    op.create_index("ix_environment_current_build_id", "environment", ["current_build_id"])
    _trigram_index("ix_environment_name_trgm", "environment")

    op.create_table(
        "specification",
        _id(),
        sa.Column("name", NAME, nullable=False),
        _jsonb("spec"),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("is_lockfile", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _timestamp("created_on", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_specification")),
        sa.UniqueConstraint("sha256", name=op.f("uq_specification_sha256")),
    )

    op.create_table(
        "build",
        _id(),
        sa.Column("environment_id", sa.BigInteger(), nullable=False),
        sa.Column("specification_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "status",
            _text_enum("status", "QUEUED", "BUILDING", "COMPLETED", "FAILED", "CANCELED"),
            server_default="QUEUED",
            nullable=False,
        ),
        sa.Column("status_info", sa.Text(), nullable=True),
        _timestamp("scheduled_on", nullable=False, default=True),
        _timestamp("started_on"),
        _timestamp("ended_on"),
        sa.Column("size", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("build_key", sa.String(length=255), nullable=False),
        sa.Column("key_version", sa.SmallInteger(), server_default=sa.text("2"), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=True),
        _timestamp("deleted_on"),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("worker_name", sa.String(length=255), nullable=True),
        _timestamp("cancel_requested_on"),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_build_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["specification_id"],
            ["specification.id"],
            name=op.f("fk_build_specification_id_specification"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build")),
        sa.UniqueConstraint("build_key", name=op.f("uq_build_build_key")),
    )
    op.create_index(
        "ix_build_environment_id_scheduled_on", "build", ["environment_id", "scheduled_on"]
    )
    op.create_index("ix_build_specification_id", "build", ["specification_id"])
    op.create_index("ix_build_status_id", "build", ["status", "id"])
    op.create_index("ix_build_scheduled_on", "build", ["scheduled_on"])
    op.create_index("ix_build_started_on", "build", ["started_on"])
    op.create_index("ix_build_ended_on", "build", ["ended_on"])
    op.create_index(
        "ix_build_job_id", "build", ["job_id"], postgresql_where=sa.text("job_id IS NOT NULL")
    )
    op.create_foreign_key(
        "fk_environment_current_build_id_build",
        "environment",
        "build",
        ["current_build_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.create_table(
        "build_artifact",
        _id(),
        sa.Column("build_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "artifact_type",
            _text_enum(
                "artifact_type",
                "DIRECTORY",
                "LOGS",
                "LOCKFILE",
                "YAML",
                "CONDA_PACK",
                "OCI_IMAGE",
            ),
            nullable=False,
        ),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        _timestamp("created_on", nullable=False, default=True),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["build.id"],
            name=op.f("fk_build_artifact_build_id_build"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_artifact")),
    )
    op.create_index(
        "ix_build_artifact_build_id_artifact_type", "build_artifact", ["build_id", "artifact_type"]
    )
    op.create_index("ix_build_artifact_key", "build_artifact", ["key"])

    op.create_table(
        "build_pip_package",
        _id(),
        sa.Column("build_id", sa.BigInteger(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["build.id"],
            name=op.f("fk_build_pip_package_build_id_build"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_pip_package")),
        sa.UniqueConstraint("build_id", "name", name=op.f("uq_build_pip_package_build_id_name")),
    )
    op.create_index("ix_build_pip_package_name", "build_pip_package", ["name"])

    # --- the package index --------------------------------------------------------------
    op.create_table(
        "conda_channel",
        _id(),
        sa.Column("name", sa.String(length=1024, collation="C"), nullable=False),
        _timestamp("last_update"),
        _timestamp("created_on", nullable=False, default=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conda_channel")),
        sa.UniqueConstraint("name", name=op.f("uq_conda_channel_name")),
    )
    op.create_table(
        "conda_package",
        _id(),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version", NAME, nullable=False),
        sa.Column("license", sa.Text(), nullable=True),
        sa.Column("license_family", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["conda_channel.id"],
            name=op.f("fk_conda_package_channel_id_conda_channel"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conda_package")),
        sa.UniqueConstraint(
            "channel_id", "name", "version", name=op.f("uq_conda_package_channel_id_name_version")
        ),
    )
    op.create_index("ix_conda_package_name_version", "conda_package", ["name", "version"])
    _trigram_index("ix_conda_package_name_trgm", "conda_package")
    op.create_table(
        "conda_package_build",
        _id(),
        sa.Column("package_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("subdir", sa.String(length=32, collation="C"), nullable=False),
        sa.Column("filename", sa.String(length=512, collation="C"), nullable=False),
        sa.Column("build", sa.String(length=255), nullable=False),
        sa.Column("build_number", sa.Integer(), nullable=False),
        _jsonb("depends", "'[]'::jsonb"),
        _jsonb("constrains", "'[]'::jsonb"),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        _timestamp("timestamp"),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["conda_package.id"],
            name=op.f("fk_conda_package_build_package_id_conda_package"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["conda_channel.id"],
            name=op.f("fk_conda_package_build_channel_id_conda_channel"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conda_package_build")),
        sa.UniqueConstraint(
            "channel_id",
            "subdir",
            "filename",
            name=op.f("uq_conda_package_build_channel_id_subdir_filename"),
        ),
    )
    op.create_index(
        "ix_conda_package_build_package_id_subdir", "conda_package_build", ["package_id", "subdir"]
    )
    op.create_table(
        "build_conda_package_build",
        sa.Column("build_id", sa.BigInteger(), nullable=False),
        sa.Column("conda_package_build_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["build.id"],
            name=op.f("fk_build_conda_package_build_build_id_build"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conda_package_build_id"],
            ["conda_package_build.id"],
            name="fk_build_conda_package_build_conda_package_build_id",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "build_id", "conda_package_build_id", name=op.f("pk_build_conda_package_build")
        ),
    )
    op.create_index(
        "ix_build_conda_package_build_conda_package_build_id",
        "build_conda_package_build",
        ["conda_package_build_id"],
    )

    # --- accounts and tokens ------------------------------------------------------------
    op.create_table(
        "user_account",
        _id(),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _timestamp("created_on", nullable=False, default=True),
        _timestamp("last_login"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
    )
    op.create_index(
        "uq_user_account_username_lower",
        "user_account",
        [sa.literal_column("lower(username)")],
        unique=True,
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("primary_namespace", NAME, nullable=True),
        _jsonb("role_bindings", "'{}'::jsonb"),
        _timestamp("expires_on"),
        _timestamp("created_on", nullable=False, default=True),
        _timestamp("last_used"),
        _timestamp("revoked_on"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_api_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
    )
    op.create_index("ix_api_token_user_id_created_on", "api_token", ["user_id", "created_on"])
    op.create_index("ix_api_token_expires_on", "api_token", ["expires_on"])

    # --- operations -----------------------------------------------------------------------
    op.create_table(
        "storage_sample",
        _id(),
        _timestamp("sampled_on", nullable=False, default=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("disk_total", sa.BigInteger(), nullable=False),
        sa.Column("disk_used", sa.BigInteger(), nullable=False),
        sa.Column("disk_free", sa.BigInteger(), nullable=False),
        sa.Column("store_size", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_sample")),
    )
    op.create_index(
        "ix_storage_sample_host_path_sampled_on", "storage_sample", ["host", "path", "sampled_on"]
    )
    op.create_index("ix_storage_sample_sampled_on", "storage_sample", ["sampled_on"])

    op.create_table(
        "queue_schema",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("procrastinate_version", sa.String(length=64), nullable=False),
        sa.Column("last_migration", sa.String(length=255), nullable=True),
        _timestamp("applied_on", nullable=False, default=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_queue_schema_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_schema")),
    )


def downgrade() -> None:
    """Remove Kiln's tables and all their data (pg_trgm and Procrastinate's schema stay)."""
    op.drop_constraint("fk_environment_current_build_id_build", "environment", type_="foreignkey")
    for table in (
        "queue_schema",
        "storage_sample",
        "api_token",
        "user_account",
        "build_conda_package_build",
        "conda_package_build",
        "conda_package",
        "conda_channel",
        "build_pip_package",
        "build_artifact",
        "build",
        "specification",
        "environment",
        "setting",
        "namespace_role_mapping_v2",
        "namespace_role_mapping",
        "namespace",
    ):
        op.drop_table(table)

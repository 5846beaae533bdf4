"""The models' shape: every filter and sort the API offers is served by an index, every
foreign key is indexed, names follow the convention, and the wire-visible enums keep
conda-store's words. No database needed: these read ``Base.metadata``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Index, Table

from appliance.db.enums import BuildArtifactType, BuildStatus
from appliance.db.models import Base

TABLES = Base.metadata.tables
REPOSITORY = Path(__file__).resolve().parents[2]


def _column_names(index: Index) -> tuple[str, ...] | None:
    names = []
    for expression in index.expressions:
        if not isinstance(expression, Column):
            return None  # an expression index
        names.append(expression.name)
    return tuple(names)


def btree_prefixes(table: Table) -> Iterator[tuple[str, ...]]:
    """Column lists that can serve an equality filter or sort on their leading columns."""
    yield tuple(column.name for column in table.primary_key.columns)
    for constraint in table.constraints:
        columns = getattr(constraint, "columns", None)
        if columns is not None and constraint.__class__.__name__ == "UniqueConstraint":
            yield tuple(column.name for column in columns)
    for index in table.indexes:
        if index.dialect_options["postgresql"]["using"] in (None, False, "btree"):
            names = _column_names(index)
            if names:
                yield names


def has_btree(table: str, *columns: str) -> bool:
    return any(prefix[: len(columns)] == columns for prefix in btree_prefixes(TABLES[table]))


def has_trigram(table: str, column: str) -> bool:
    for index in TABLES[table].indexes:
        options = index.dialect_options["postgresql"]
        if options["using"] == "gin" and options["ops"].get(column) == "gin_trgm_ops":
            return True
    return False


#: (what the API does, table, leading columns). conda-store-api.md §1.2-1.3 and §2.
API_LOOKUPS = [
    # GET /build/: filters and sorts; the UI's builds of one environment by scheduled_on
    ("build list: status filter (sorted by id)", "build", ("status", "id")),
    ("build list: environment_id filter", "build", ("environment_id",)),
    ("build list: one environment by scheduled_on", "build", ("environment_id", "scheduled_on")),
    ("build list: sort by id", "build", ("id",)),
    ("build list: sort by started_on", "build", ("started_on",)),
    ("build list: sort by scheduled_on", "build", ("scheduled_on",)),
    ("build list: sort by ended_on", "build", ("ended_on",)),
    ("build list: namespace filter", "namespace", ("name",)),
    ("build list: name filter", "environment", ("name",)),
    ("build/environment list: artifact filter", "build_artifact", ("build_id", "artifact_type")),
    ("packages filter: package name", "conda_package", ("name",)),
    (
        "packages filter: builds of a package build",
        "build_conda_package_build",
        ("conda_package_build_id",),
    ),
    ("packages filter: package builds of a package", "conda_package_build", ("package_id",)),
    ("build packages: packages of a build", "build_conda_package_build", ("build_id",)),
    ("build pip packages", "build_pip_package", ("build_id",)),
    ("builds with a pip package", "build_pip_package", ("name",)),
    # environments (v1 and v2 lists), namespaces
    ("environment list: namespace filter/sort", "environment", ("namespace_id", "name")),
    ("environment list: sort by name", "environment", ("name",)),
    ("environment list: status of the current build", "environment", ("current_build_id",)),
    ("namespace list: sort by name", "namespace", ("name",)),
    # packages and channels
    (
        "package list: channel filter, sort channel/name/version",
        "conda_package",
        ("channel_id", "name", "version"),
    ),
    ("package list: exact name, distinct_on name/version", "conda_package", ("name", "version")),
    ("channel list: sort by name", "conda_channel", ("name",)),
    # the rest of the data model
    ("specification by content hash", "specification", ("sha256",)),
    ("v1 role mappings of a namespace", "namespace_role_mapping", ("namespace_id",)),
    ("v2 role mappings of a namespace", "namespace_role_mapping_v2", ("namespace_id",)),
    (
        "v2 role mappings granted to a namespace",
        "namespace_role_mapping_v2",
        ("other_namespace_id",),
    ),
    ("settings of a scope", "setting", ("scope", "key")),
    ("tokens of a user, newest first", "api_token", ("user_id", "created_on")),
    ("expired tokens", "api_token", ("expires_on",)),
    ("storage trend of one store", "storage_sample", ("host", "path", "sampled_on")),
    ("storage trend of all stores", "storage_sample", ("sampled_on",)),
    ("build of a queue job (cancel, stalled recovery)", "build", ("job_id",)),
    ("artifact by storage key (registry)", "build_artifact", ("key",)),
    ("build by build key", "build", ("build_key",)),
]


@pytest.mark.parametrize(
    ("lookup", "table", "columns"), API_LOOKUPS, ids=[x[0] for x in API_LOOKUPS]
)
def test_every_api_filter_and_sort_has_an_index(
    lookup: str, table: str, columns: tuple[str, ...]
) -> None:
    assert has_btree(table, *columns), f"{lookup}: no index on {table}({', '.join(columns)})"


@pytest.mark.parametrize(
    ("table", "column"),
    [("namespace", "name"), ("environment", "name"), ("conda_package", "name")],
)
def test_substring_search_has_a_trigram_index(table: str, column: str) -> None:
    assert has_trigram(table, column)


def test_every_foreign_key_is_indexed() -> None:
    missing = []
    for table in TABLES.values():
        for key in table.foreign_key_constraints:
            columns = tuple(column.name for column in key.columns)
            if not has_btree(table.name, *columns):
                missing.append(f"{table.name}({', '.join(columns)})")
    assert not missing, f"foreign keys without an index: {missing}"


def test_usernames_are_unique_without_regard_to_case() -> None:
    (index,) = [
        i for i in TABLES["user_account"].indexes if i.name == "uq_user_account_username_lower"
    ]
    assert index.unique
    assert "lower(username)" in str(index.expressions[0])


def test_names_are_unique_among_rows_not_deleted() -> None:
    for table, columns in (("namespace", ("name",)), ("environment", ("namespace_id", "name"))):
        (index,) = [i for i in TABLES[table].indexes if i.unique]
        assert _column_names(index) == columns
        assert str(index.dialect_options["postgresql"]["where"]) == "deleted_on IS NULL"


def test_every_constraint_and_index_has_a_stable_name_postgres_accepts() -> None:
    names = []
    for table in TABLES.values():
        names += [index.name for index in table.indexes]
        names += [constraint.name for constraint in table.constraints]
    assert all(isinstance(name, str) and name for name in names)
    too_long = [name for name in names if isinstance(name, str) and len(name) > 63]
    assert not too_long


def test_timestamps_are_time_zone_aware() -> None:
    naive = [
        f"{table.name}.{column.name}"
        for table in TABLES.values()
        for column in table.columns
        if column.type.__class__.__name__ == "DateTime" and not column.type.timezone  # type: ignore[attr-defined]
    ]
    assert not naive


def test_statuses_and_artifact_types_keep_conda_store_words() -> None:
    assert [s.value for s in BuildStatus] == [
        "QUEUED",
        "BUILDING",
        "COMPLETED",
        "FAILED",
        "CANCELED",
    ]
    assert {"LOGS", "LOCKFILE", "YAML", "CONDA_PACK", "DIRECTORY", "OCI_IMAGE"} == {
        a.value for a in BuildArtifactType
    }
    assert [s for s in BuildStatus if s.is_final] == [
        BuildStatus.COMPLETED,
        BuildStatus.FAILED,
        BuildStatus.CANCELED,
    ]


def test_the_enums_can_be_imported_without_sqlalchemy() -> None:
    """Layers above ``services`` (HTTP handlers, the console's wire types) may name them."""
    probe = "import sys, appliance.db.enums; print('sqlalchemy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPOSITORY
    )
    assert result.stdout.strip() == "False"

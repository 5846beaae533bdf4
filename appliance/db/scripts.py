"""Kiln's Alembic migration scripts and Alembic's configuration, built in code.

No ``alembic.ini`` is read: :func:`alembic_config` points Alembic at ``migrations/`` next to
this module (a frozen binary bundles that directory as data files; the scripts are loaded from
their paths) and hands it an open connection, or a URL for developer tools.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, MetaData

#: Where the Alembic environment and revisions are.
MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent / "migrations"

#: Tables in Kiln's database that Kiln's models do not describe (Procrastinate's own).
FOREIGN_TABLE_PREFIXES = ("procrastinate_",)


def alembic_config(*, connection: Connection | None = None, url: str | URL | None = None) -> Config:
    """Alembic's configuration; migrations run on ``connection`` (or connect to ``url``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["url"] = url
    return config


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic filter: leave Procrastinate's tables out of comparisons and autogenerate."""
    if type_ == "table" and name is not None:
        return not name.startswith(FOREIGN_TABLE_PREFIXES)
    return True


def configure_context(context: Any, connection: Connection, metadata: MetaData) -> None:
    """Configure Alembic's environment context (called from ``migrations/env.py``)."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
    )


def script_directory() -> ScriptDirectory:
    """The migration scripts, read from disk."""
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    # Reading the scripts is slow-ish, and they cannot change while Kiln runs.
    scripts = script_directory()
    heads = scripts.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{MIGRATIONS_DIRECTORY} must hold one line of revisions: {heads}")
    return heads[0], frozenset(script.revision for script in scripts.walk_revisions())


def code_revision() -> str:
    """The head revision of this code's migrations: the schema it needs."""
    return _revisions()[0]


def is_known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (the head or an older one)."""
    return revision in _revisions()[1]

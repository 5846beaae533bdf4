"""Kiln's database: PostgreSQL through SQLAlchemy 2, schema migrations with Alembic.

- :mod:`appliance.db.models`: the tables (``Base.metadata``).
- :mod:`appliance.db.enums`: ``BuildStatus`` and ``BuildArtifactType`` (no SQLAlchemy import).
- :mod:`appliance.db.engine`: engines and session factories from a database URL.
- :mod:`appliance.db.migrate`: ``kiln migrate`` (Alembic upgrade + Procrastinate's schema,
  under an advisory lock); :mod:`appliance.db.queue_schema` is the Procrastinate part.
- :mod:`appliance.db.schema`: the check ``kiln web``/``kiln worker``/``/readyz`` run.
- :mod:`appliance.db.scripts`: Alembic configured in code; ``migrations/`` holds the scripts.
- :mod:`appliance.db.errors`: what goes wrong, in words an operator can act on.

This package imports nothing at import time, so the SQLAlchemy-free :mod:`appliance.db.enums`
stays light for callers that only need the enums.
"""

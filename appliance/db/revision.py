"""Write a new migration script (a developer tool, not part of the ``kiln`` command).

    python -m appliance.db.revision --url postgresql://... -m "add build retention"

The database at ``--url`` must be at the current head (``kiln migrate`` it first, or use a
throw-away database); the new script in ``appliance/db/migrations/versions`` holds what differs
between it and the models. Read and edit it before committing: autogenerate does not see
renames, data migrations or CHECK constraint changes.
"""

from __future__ import annotations

import argparse
import sys

from alembic import command

from appliance.db.scripts import alembic_config, code_revision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.db.revision", description=__doc__)
    parser.add_argument("--url", required=True, help="a PostgreSQL database at the head revision")
    parser.add_argument("-m", "--message", required=True, help="what the revision changes")
    parser.add_argument("--rev-id", help="revision id (default: the next four-digit number)")
    parser.add_argument("--empty", action="store_true", help="do not autogenerate operations")
    args = parser.parse_args(argv)
    rev_id = args.rev_id or f"{int(code_revision()) + 1:04d}"
    command.revision(
        alembic_config(url=args.url),
        message=args.message,
        autogenerate=not args.empty,
        rev_id=rev_id,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

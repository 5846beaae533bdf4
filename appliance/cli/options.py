"""What several subcommands share: option types that refuse bad values as usage errors, and
keeping libraries' narration out of a command's output.

A bad option value is refused by argparse while the command line is parsed, so a command
never reaches its configuration, its database or its work with it: ``kiln: error: ...`` (via
argparse's usage message) and exit status 2, like any other usage error.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable


def at_least(minimum: float, kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse ``type=`` that reads a ``kind`` number of at least ``minimum``.

    Anything else (not a number, or too small) is an ``ArgumentTypeError``: argparse prints
    the option's name with the reason and exits with status 2.
    """

    def parse(text: str) -> int | float:
        try:
            number = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}")
        return number

    return parse


def quiet_alembic(log_level: str) -> None:
    """Keep Alembic's INFO narration ("Context impl PostgresqlImpl.", "Will assume
    transactional DDL.", logged whenever the schema is checked or migrated) out of a command's
    output, unless ``log_level`` is ``DEBUG``: Kiln reports what matters itself.

    Call it before anything touches the database.
    """
    if log_level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)

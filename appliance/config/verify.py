"""``kiln config verify FILE``: check a configuration file without starting anything.

Reports, with file and line: a file that does not run; unknown classes and options (errors,
with a "did you mean"); values of the wrong type or outside the allowed values; settings that
cannot work together. conda-store options and values that Kiln ignores are warnings. Only the
file is checked: ``KILN_*`` environment variables are not applied (``kiln config show`` shows
the effective values).
"""

from __future__ import annotations

from pathlib import Path

from traitlets import TraitError

from appliance.common.paths import DataDir
from appliance.config.loader import (
    InvalidConfiguration,
    KilnConfig,
    Problem,
    collect,
    cross_check,
)


def verify_file(path: Path, data_dir: DataDir) -> list[Problem]:
    """Every problem in the configuration file at ``path`` (empty: the file is fine)."""
    try:
        collected = collect(path, data_dir, environ={}, strict=True)
    except InvalidConfiguration as error:
        return list(error.problems)
    problems = list(collected.problems)
    try:
        loaded = KilnConfig(
            data_dir=data_dir,
            config_file=path,
            config=collected.config,
            origins=collected.origins,
        )
    except TraitError as error:
        problems.append(Problem("error", str(error), file=path))
    else:
        problems.extend(cross_check(loaded))
    return sorted(problems, key=lambda problem: problem.line or 0)

"""``kiln config generate``: a commented configuration file written from the options' help.

Every class of the catalog, every option commented out with its default, so the file is the
manual and a starting point at once. Uncommenting any line gives valid Python that loads.
"""

from __future__ import annotations

import inspect
import logging
import pprint
import textwrap
from typing import Any

from traitlets import TraitType

from appliance import __version__
from appliance.common.paths import DataDir
from appliance.config.base import (
    DEFAULT_TEXT,
    OBSOLETE,
    ClassChoice,
    KilnConfigurable,
    describe,
    ordered_traits,
)
from appliance.config.catalog import CLASSES
from appliance.config.compat import provided_names

_WIDTH = 98
_log = logging.getLogger("appliance.config")

_HEADER = """\
# Kiln configuration file (kiln_config.py), written by `kiln config generate` (Kiln {version}).
#
# Kiln reads <data dir>/kiln_config.py, or the file given with --config. It is Python: options
# are set as c.<Class>.<option> = value. Every option below is commented out with its default;
# uncomment and change what you need. `kiln config verify FILE` checks a file without starting
# anything; `kiln config show` prints the effective configuration with secrets masked.
#
# Precedence: defaults < this file < environment variables (KILN_*, named in each option's
# help). Relative paths are taken relative to the data dir, here {data_dir}.
#
# conda-store configuration files load unchanged: the class and option names are conda-store's,
# options that no longer apply are accepted and logged as ignored, and imports such as
#     from conda_store_server.storage import S3Storage
# work inside this file. Kiln provides:
"""


def _comment(text: str, prefix: str) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            lines.append(prefix.rstrip())
            continue
        indent = raw[: len(raw) - len(raw.lstrip())]
        if indent or raw.startswith("Example"):  # code: never re-wrapped
            lines.append(f"{prefix}{raw}")
            continue
        lines.extend(
            f"{prefix}{line}"
            for line in textwrap.wrap(
                raw,
                width=_WIDTH - len(prefix),
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return lines


def _python_value(trait: TraitType[Any, Any], value: Any, width: int) -> str:
    if isinstance(value, type) and isinstance(trait, ClassChoice):
        return repr(trait.short_name(value))
    if callable(value):
        return describe(trait, value)
    return pprint.pformat(value, width=max(width, 40), sort_dicts=False)


def _option_lines(
    cls: type[KilnConfigurable], name: str, trait: TraitType[Any, Any], value: Any
) -> list[str]:
    lines = [""]
    reason = trait.metadata.get(OBSOLETE)
    help_text = inspect.cleandoc(trait.help or "")
    if reason:
        lines.extend(_comment(help_text, "## "))
        lines.extend(
            _comment(f"Accepted for conda-store compatibility and ignored: {reason}.", "## ")
        )
    else:
        lines.extend(_comment(help_text, "## "))
        shown = trait.metadata.get(DEFAULT_TEXT)
        default = describe(trait, value)
        if len(default) > 60:
            default = "the value below"
        if shown:
            default = shown if shown.startswith(default) else f"{shown} (here: {default})"
        lines.extend(_comment(f"Default: {default}", "## "))
    target = f"c.{cls.__name__}.{name} = "
    first, *rest = _python_value(trait, value, _WIDTH - 2 - len(target)).splitlines()
    lines.append(f"# {target}{first}")
    lines.extend(f"# {' ' * len(target)}{line}" for line in rest)
    return lines


def generate_config(data_dir: DataDir) -> str:
    """The text of a commented configuration file; defaults computed for ``data_dir``."""
    out = _HEADER.format(version=__version__, data_dir=data_dir.root).splitlines()
    out.extend(_comment(", ".join(provided_names()), "#     "))
    for cls in CLASSES:
        probe = cls(data_dir=data_dir, log=_log)
        doc = inspect.cleandoc(cls.__doc__ or "").replace("``", "")
        out.append("")
        out.append("#" + "-" * (_WIDTH - 1))
        out.extend(_comment(f"{cls.__name__}: {doc}", "# "))
        out.append("#" + "-" * (_WIDTH - 1))
        own = ordered_traits(cls, own=True)
        if not own:
            bases = ", ".join(base.__name__ for base in cls.__bases__)
            out.append(f"# No options of its own; see {bases}.")
        live = {name: trait for name, trait in own.items() if not trait.metadata.get(OBSOLETE)}
        ignored = {name: trait for name, trait in own.items() if trait.metadata.get(OBSOLETE)}
        for name, trait in [*live.items(), *ignored.items()]:
            out.extend(_option_lines(cls, name, trait, getattr(probe, name)))
    return "\n".join(out) + "\n"

"""Multiprocess mode: where this host's processes leave their metric values.

``prometheus_client`` reads ``PROMETHEUS_MULTIPROC_DIR`` once, when it is first imported, and
from then on writes every counter and histogram value to memory-mapped files in that directory
(one set per process id). Entry points decide on the mode before anything imports
``prometheus_client``; this module only reads what they decided.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The variable ``prometheus_client`` reads (its lower-case spelling is deprecated).
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory(environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory processes on this host write their values to, or None (plain mode: each
    process keeps its values in memory and ``/metrics`` shows only its own)."""
    env = os.environ if environ is None else environ
    value = env.get(MULTIPROC_DIR_ENV)
    return Path(value) if value else None


def prepare_multiprocess_directory(path: Path) -> None:
    """Create ``path`` (0700) if it is missing. A process in multiprocess mode fails on its
    first recorded value when the directory does not exist; stale files of an earlier run must
    be removed by whoever owns the directory (``kiln serve`` wipes ``<data dir>/run`` at start),
    not here: other processes of this run may already have written to it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)

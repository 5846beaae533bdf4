"""Process-level helpers for entry points (never called from library code)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """Flush everything, then leave with ``code`` without running interpreter teardown.

    py-rattler's tokio threads can crash the interpreter during normal teardown (SIGSEGV or
    SIGABRT after the work is done; NOTES.md). A crash there would turn a success into a failure
    (or hide a failure), so every entry point that may have touched rattler leaves through here:
    the exit code is exactly the one the command decided on.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)

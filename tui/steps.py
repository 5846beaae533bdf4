"""Which step a running build is in, read from its log.

A build log gives each step a section: ``<stamp> [<step>] --- <step> ---`` opens it, and
``<step> done in 1.23s`` or ``<step> failed after ...`` under the same prefix ends it. The
current step is the one opened last that has not ended.
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^\S+ \[(?P<step>[^\]]+)\] (?P<message>.*)$")


def current_step(log: str) -> str | None:
    """The step the log's build is in (None: none started yet, or all ended)."""
    open_steps: list[str] = []
    for raw in log.splitlines():
        line = _LINE.match(raw)
        if line is None:
            continue
        step, message = line["step"], line["message"]
        if message == f"--- {step} ---":
            if step in open_steps:
                open_steps.remove(step)
            open_steps.append(step)
        elif message.startswith((f"{step} done in ", f"{step} failed after ")) and (
            step in open_steps
        ):
            open_steps.remove(step)
    return open_steps[-1] if open_steps else None

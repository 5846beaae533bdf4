"""Table cells that carry meaning in colour as well as in words.

Only the 16 ANSI colours are used (the terminal's own palette), and the word is always there:
the console reads the same on a 16-colour terminal, a truecolour one, or without colour.
"""

from __future__ import annotations

from rich.text import Text

_BUILD_STYLES = {
    "COMPLETED": "green",
    "FAILED": "bold red",
    "BUILDING": "yellow",
    "QUEUED": "cyan",
    "CANCELED": "magenta",
}

_SERVICE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "backoff": "bold red",
    "crashed": "bold red",
    "failed": "bold red",
    "stopped": "magenta",
    "exited": "magenta",
}

_LEVEL_STYLES = {
    "DEBUG": "blue",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
}


def build_status(status: str, *, deleted: bool = False) -> Text:
    if deleted:
        return Text(f"{status} (deleted)", style="dim")
    return Text(status, style=_BUILD_STYLES.get(status, ""))


def service_state(state: str) -> Text:
    return Text(state, style=_SERVICE_STYLES.get(state.lower(), "yellow"))


def log_level(level: str) -> str:
    """The Rich style of a log line of ``level``."""
    return _LEVEL_STYLES.get(level.upper(), "")


def flag(value: bool, yes: str = "yes", no: str = "") -> Text:
    return Text(yes, style="bold") if value else Text(no, style="dim")


def dim(text: str) -> Text:
    return Text(text, style="dim")

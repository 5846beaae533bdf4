"""The top line of every screen: the console's screens with their keys, the current one marked.

Each entry is a link (a click switches to that screen); the keys 1-6 do the same from anywhere
(bindings of the app). The server the console talks to is named on the right when it fits.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

#: The screens, in order: (mode name, key, title).
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "1", "Dashboard"),
    ("builds", "2", "Builds"),
    ("environments", "3", "Environments"),
    ("access", "4", "Access"),
    ("configuration", "5", "Config"),
    ("logs", "6", "Logs"),
)


def title_of(mode: str) -> str:
    return next((title for name, _, title in SCREENS if name == mode), mode)


class Navigation(Horizontal):
    """Links to the screens; ``current`` is the one shown."""

    def __init__(self, current: str, server: str = "") -> None:
        super().__init__(id="navigation")
        self.current = current
        self.server = server

    def compose(self) -> ComposeResult:
        parts = []
        for mode, key, title in SCREENS:
            label = f"{key} {title}"
            if mode == self.current:
                parts.append(f"[reverse] {label} [/reverse]")
            else:
                parts.append(f"[@click=app.switch_mode('{mode}')] {label} [/]")
        yield Static("".join(parts), id="navigation-links", markup=True)
        yield Static(self.server, id="navigation-server", markup=False)

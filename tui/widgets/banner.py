"""The banner that says the connection to Kiln is lost and when the next attempt is."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import Static


@dataclass(frozen=True)
class Connection:
    """The console's connection to Kiln, as the app last saw it."""

    up: bool = True
    #: Why it is down (the client's message).
    reason: str = ""
    #: Reconnection attempts made so far.
    attempts: int = 0
    #: Seconds until the next attempt.
    retry_in: float = 0.0


class ConnectionBanner(Static):
    """Hidden while connected; otherwise the reason and the retry schedule."""

    def __init__(self) -> None:
        super().__init__("", id="connection-banner", markup=False)
        self.display = False

    def show(self, connection: Connection) -> None:
        self.display = not connection.up
        if connection.up:
            return
        when = f"retrying in {connection.retry_in:.0f}s" if connection.retry_in else "retrying"
        attempts = f" (attempt {connection.attempts})" if connection.attempts else ""
        self.update(f"Connection lost: {connection.reason} — {when}{attempts}")

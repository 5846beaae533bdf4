"""UI render benchmark: the environment list page with 1,000 environments, one request at a time.

    .venv/bin/python bench/ui_render.py [--requests 300] [--rounds 5] [--keep]

The same dataset as ``api_throughput.py`` (its :data:`~api_throughput.SEED_SQL`: 10 namespaces,
1,000 environments, 5,000 builds with artifacts, in Kiln's managed PostgreSQL, migrated by
``kiln migrate``'s code), one ``kiln web`` (one granian worker) on 127.0.0.1 and an admin token.
Then, over one keep-alive connection, requests one after another (the server's time for a page,
not its throughput), in :data:`ROUNDS` rounds of ``--requests`` each after a warm-up, alternating
the pages so a slow moment of the shared machine hits them all:

- ``/ui/`` (the first page: 25 environments with their current builds, the default sort)
- ``/ui/?page=40&sort=name&order=desc`` (the last page, another sort)
- ``/ui/?search=env-09&status=COMPLETED`` (search and a filter)
- baseline, same server, same run: ``/api/v1/environment/?size=25`` (the same 25 environments
  as JSON through the same use case, without their builds and without a template).

Printed per page: p50 and p99 of each round; the median p99 over the rounds is the figure, with
the baseline's as the ratio. Budget (issue 6): p99 under :data:`P99_BUDGET` for the environment
list. Also the page weight: the first page's HTML with the stylesheets and scripts it links
(budget :data:`WEIGHT_BUDGET` bytes). Budgets are reported, never enforced.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from api_throughput import (
    BUILDS,
    ENVIRONMENTS,
    NAMESPACES,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Dataset,
    _environment,
    reachable_dir,
    seed,
)
from measure import BenchmarkError, Budget, Result, Samples, Unit, percentile, show
from processes import free_port, http_status, reachable, run_checked, stop, sweep, tail

from appliance.config import load_config
from appliance.db.migrate import migrate
from appliance.supervisor.postgres import ManagedPostgres

REQUESTS = 300
ROUNDS = 5
WARMUP_REQUESTS = 50
#: Issue 6's budgets.
P99_BUDGET = 0.050
WEIGHT_BUDGET = 200_000

PAGES = {
    "ui-list": "/ui/",
    "ui-list-last": "/ui/?page=40&sort=name&order=desc",
    "ui-list-search": "/ui/?search=env-09&status=COMPLETED",
}
BASELINE = "/api/v1/environment/?size=25"


class Connection:
    """One keep-alive HTTP/1.1 connection sending GETs with the admin token."""

    def __init__(self, port: int, token: str) -> None:
        self._http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[int, bytes, float]:
        """``(status, body, seconds)`` of one request."""
        started = time.perf_counter()
        self._http.request("GET", path, headers=self._headers)
        response = self._http.getresponse()
        body = response.read()
        return response.status, body, time.perf_counter() - started

    def close(self) -> None:
        self._http.close()


def check_pages(connection: Connection) -> list[str]:
    """Each page once: it must answer 200 with environments listed; lines describing them."""
    lines = []
    for path in [*PAGES.values(), BASELINE]:
        status, body, _ = connection.get(path)
        if status != 200:
            raise BenchmarkError(f"GET {path} answered {status}: {body[:300]!r}")
        rows = body.count(b'href="/ui/environment/')
        lines.append(f"GET {path}: {len(body)} bytes" + (f", {rows} rows" if rows else ""))
    return lines


def page_weight(connection: Connection) -> tuple[int, list[str]]:
    """The first page's bytes with the stylesheets and scripts it links."""
    _, body, _ = connection.get(PAGES["ui-list"])
    html = body.decode()
    assets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) + re.findall(
        r'<script src="([^"]+)"', html
    )
    total, parts = len(body), [f"HTML {len(body)} B"]
    for asset in assets:
        status, content, _ = connection.get(asset)
        if status != 200:
            raise BenchmarkError(f"{asset} linked from /ui/ answered {status}")
        total += len(content)
        parts.append(f"{asset.rsplit('/', 1)[-1]} {len(content)} B")
    return total, parts


def measure_rounds(
    connection: Connection, requests: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """``label -> [(p50, p99) per round]`` for every page and the baseline."""
    plan = {**PAGES, "api-json": BASELINE}
    for _ in range(WARMUP_REQUESTS):
        for path in plan.values():
            connection.get(path)
    figures: dict[str, list[tuple[float, float]]] = {label: [] for label in plan}
    for round_number in range(1, rounds + 1):
        times: dict[str, list[float]] = {label: [] for label in plan}
        for _ in range(requests):
            for label, path in plan.items():
                status, _, seconds = connection.get(path)
                if status != 200:
                    raise BenchmarkError(f"GET {path} answered {status} during the run")
                times[label].append(seconds)
        for label, values in times.items():
            figures[label].append((percentile(values, 0.5), percentile(values, 0.99)))
        print(
            f"  round {round_number}: "
            + ", ".join(
                f"{label} p50 {show(figures[label][-1][0], Unit.SECONDS)} "
                f"p99 {show(figures[label][-1][1], Unit.SECONDS)}"
                for label in plan
            ),
            flush=True,
        )
    return figures


def measure(scratch: Path, *, requests: int, rounds: int) -> list[Result]:
    reachable(scratch)
    data_dir = reachable_dir(scratch / "data")
    log = scratch / "kiln-web.log"
    server = ManagedPostgres.from_config(load_config(None, data_dir, environ={}))
    web: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        migrate(server.url)
        for line in seed(server.conninfo, Dataset(NAMESPACES, ENVIRONMENTS, BUILDS)):
            print(f"  {line}", flush=True)
        token = run_checked(
            [sys.executable, "-m", "appliance", "token", "create", "--data-dir", str(data_dir),
             "--log-level", "WARNING"],
            environment=_environment(),
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        port = free_port()
        (data_dir / "kiln_config.py").write_text(
            "# Written by bench/ui_render.py\n"
            "c.CondaStoreServer.address = '127.0.0.1'\n"
            f"c.CondaStoreServer.port = {port}\n"
        )
        with log.open("ab") as output:
            web = subprocess.Popen(
                [sys.executable, "-m", "appliance", "web", "--data-dir", str(data_dir),
                 "--workers", "1", "--log-level", "WARNING"],
                stdout=output, stderr=subprocess.STDOUT, env=_environment(),
                cwd=data_dir.parent, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while http_status(f"http://127.0.0.1:{port}/healthz") != 200:
            if web.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"kiln web did not come up:\n{tail(log)}")
            time.sleep(0.1)
        connection = Connection(port, token)
        try:
            for line in check_pages(connection):
                print(f"  {line}", flush=True)
            weight, parts = page_weight(connection)
            figures = measure_rounds(connection, requests, rounds)
        finally:
            connection.close()
    finally:
        if web is not None and not stop(web, STOP_TIMEOUT):
            print(f"  kiln web did not stop within {STOP_TIMEOUT:g}s of SIGTERM: killed")
        server.stop()
        left = sweep(str(scratch))
        if left:
            print("  killed leftovers: " + "; ".join(left))
    baseline = Samples(tuple(p99 for _, p99 in figures["api-json"]))
    results = [
        Result(
            name=label,
            kiln=Samples(tuple(p99 for _, p99 in figures[label])),
            budget=Budget(P99_BUDGET),
            baseline=baseline,
            baseline_label="JSON page p99",
            details=[
                f"{label} ({PAGES[label]}), one request at a time, p99 per round: "
                + ", ".join(show(p99, Unit.SECONDS) for _, p99 in figures[label])
                + "; p50 per round: "
                + ", ".join(show(p50, Unit.SECONDS) for p50, _ in figures[label])
            ],
        )
        for label in PAGES
    ]
    results.append(
        Result(
            name="ui-page-weight",
            kiln=Samples((float(weight),), Unit.BYTES),
            budget=Budget(float(WEIGHT_BUDGET)),
            details=[f"/ui/ with its assets: {weight} B ({', '.join(parts)})"],
        )
    )
    return results


def run(scratch: Path) -> list[Result]:
    """``bench/run.py``'s entry point."""
    return measure(scratch, requests=REQUESTS, rounds=ROUNDS)


def main(arguments: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="per page and round")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args(arguments)
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bench-ui-"))
    print(f"== ui render == (scratch {scratch})", flush=True)
    try:
        results = measure(scratch, requests=options.requests, rounds=options.rounds)
    except BenchmarkError as error:
        print(f"ui render: BENCHMARK BROKEN: {error}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for result in results:
        for line in result.details:
            print(f"  {line}")
    for result in results:
        print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`kiln web` as an operator runs it: a subprocess on a free port against the test database,
probed over HTTP, scraped, and stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import Engine, text

from tests.fixtures.postgres import TestDatabase

REPOSITORY = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]  #: names in lower case

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", timeout: float = 10) -> Answer:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method=method), timeout=timeout
        ) as r:
            return Answer(r.status, r.read(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return Answer(error.code, error.read(), headers)


def samples(url: str) -> list[Sample]:
    answer = request(url)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = list(text_string_to_metric_families(answer.body.decode()))
    for family in families:
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type != "unknown", f"{family.name} has no TYPE"
    return [sample for family in families for sample in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    matching = [s.value for s in found if s.name == name and labels.items() <= s.labels.items()]
    assert matching, f"no sample {name} {labels}"
    return sum(matching)


def descendants(pid: int) -> set[int]:
    """Processes whose parent chain leads to ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class KilnWeb:
    """A running `kiln web`."""

    def __init__(self, data_dir: Path, port: int, *args: str, env: Mapping[str, str] = {}):
        self.port = port
        self.log = data_dir / "web.log"
        environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), **env}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance", "web", "--data-dir", str(data_dir), *args],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"kiln web exited:\n{self.output()}"
            try:
                if request(self.url("/healthz"), timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"kiln web did not serve /healthz:\n{self.output()}")

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def write_config(data_dir: Path, database: TestDatabase, port: int, *lines: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kiln_config.py").write_text(
        "\n".join(
            [
                f"c.CondaStore.database_url = {database.url!r}",
                'c.CondaStoreServer.address = "127.0.0.1"',
                f"c.CondaStoreServer.port = {port}",
                *lines,
            ]
        )
        + "\n"
    )


@pytest.fixture
def web_data_dir(tmp_path: Path, database: TestDatabase) -> tuple[Path, int]:
    port = free_port()
    write_config(tmp_path / "data", database, port)
    (tmp_path / "data" / "store").mkdir()
    return tmp_path / "data", port


@pytest.fixture
def kiln_web(web_data_dir: tuple[Path, int]) -> Iterator[KilnWeb]:
    data_dir, port = web_data_dir
    web = KilnWeb(data_dir, port)
    try:
        web.wait_until_serving()
        yield web
    finally:
        web.kill()


def test_ready_only_with_a_live_worker_then_sigterm_stops_everything(
    kiln_web: KilnWeb, db_engine: Engine
) -> None:
    web = kiln_web
    assert request(web.url("/healthz")).json() == {"status": "ok"}
    head = request(web.url("/healthz"), method="HEAD")
    assert (head.status, head.body) == (200, b"")

    waiting = request(web.url("/readyz"))
    assert waiting.status == 503
    checks = waiting.json()["checks"]
    assert checks["database"]["ok"] and checks["schema"]["ok"]
    assert not checks["workers"]["ok"]
    assert "kiln worker" in checks["workers"]["message"]
    assert request(web.url("/readyz"), method="HEAD").status == 503

    with db_engine.begin() as connection:
        connection.execute(text("INSERT INTO procrastinate_workers DEFAULT VALUES"))
    ready = request(web.url("/readyz"))
    assert ready.status == 200, ready.body
    assert ready.json()["status"] == "ready"
    assert request(web.url("/readyz"), method="HEAD").status == 200

    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        )
    stalled = request(web.url("/readyz"))
    assert stalled.status == 503
    assert "no worker sent a heartbeat within" in stalled.json()["checks"]["workers"]["message"]

    found = samples(web.url("/metrics"))
    assert value(found, "kiln_database_up") == 1
    assert value(found, "kiln_workers", state="stalled") == 1
    assert value(found, "kiln_workers", state="live") == 0
    assert value(found, "kiln_builds", status="QUEUED") == 0
    assert value(found, "kiln_queue_jobs", queue="builds", status="todo") == 0
    assert value(found, "kiln_http_requests_total", route="/readyz", status="503") == 3
    assert value(found, "kiln_http_requests_total", route="/readyz", status="200") == 2
    assert value(found, "kiln_store_filesystem_free_bytes") > 0

    children = descendants(web.process.pid)
    assert children, "granian runs its worker in a child process"
    started = time.monotonic()
    assert web.stop() == 0, web.output()
    assert time.monotonic() - started < 10
    leftovers = [pid for pid in children if alive(pid)]
    assert leftovers == [], f"processes left behind: {leftovers}"


def test_ready_once_a_kiln_worker_runs(kiln_web: KilnWeb, web_data_dir: tuple[Path, int]) -> None:
    data_dir, _ = web_data_dir
    worker = subprocess.Popen(
        [sys.executable, "-m", "appliance", "worker", "--data-dir", str(data_dir)],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (answer := request(kiln_web.url("/readyz"))).status != 200:
            assert worker.poll() is None, worker.communicate()[1]
            assert time.monotonic() < deadline, answer.body
            time.sleep(0.2)
        # A `kiln worker` process runs one queue worker per queue group.
        assert value(samples(kiln_web.url("/metrics")), "kiln_workers", state="live") >= 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


def test_probes_and_metrics_also_answer_under_the_url_prefix(
    tmp_path: Path, database: TestDatabase
) -> None:
    port = free_port()
    write_config(tmp_path, database, port, 'c.CondaStoreServer.url_prefix = "/kiln"')
    web = KilnWeb(tmp_path, port)
    try:
        web.wait_until_serving()
        assert request(web.url("/kiln/healthz")).status == 200
        assert request(web.url("/kiln/readyz")).status == 503
        samples(web.url("/kiln/metrics"))
        assert web.stop() == 0
    finally:
        web.kill()


def test_metrics_are_summed_over_web_workers_and_other_processes(
    tmp_path: Path, database: TestDatabase
) -> None:
    """Multiprocess mode: two granian workers serve, a third process records a build; one
    scrape sees all of it."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    port = free_port()
    write_config(tmp_path / "data", database, port)
    web = KilnWeb(tmp_path / "data", port, "--workers", "2", env=environment)
    try:
        web.wait_until_serving()
        for _ in range(20):
            assert request(web.url("/healthz")).status == 200
        recorder = subprocess.run(
            [
                sys.executable,
                "-c",
                "from appliance.observability.metrics import observe_build\n"
                "observe_build('COMPLETED', {'solve': 0.5, 'install': 2.0})\n",
            ],
            env={**os.environ, "PYTHONPATH": str(REPOSITORY), **environment},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert recorder.returncode == 0, recorder.stderr

        found = samples(web.url("/metrics"))
        # 20 requests, plus wait_until_serving's.
        assert value(found, "kiln_http_requests_total", route="/healthz", status="200") >= 21
        assert value(found, "kiln_build_duration_seconds_count", status="COMPLETED") == 1
        assert value(found, "kiln_build_duration_seconds_sum", status="COMPLETED") == 2.5
        assert value(found, "kiln_build_step_duration_seconds_count", step="install") == 1
        assert len(descendants(web.process.pid)) >= 2
        assert web.stop() == 0, web.output()
    finally:
        web.kill()


def test_refuses_to_start_on_an_unmigrated_database(
    tmp_path: Path, unmigrated_database: TestDatabase
) -> None:
    port = free_port()
    write_config(tmp_path, unmigrated_database, port)
    web = KilnWeb(tmp_path, port)
    try:
        assert web.process.wait(60) == 1
    finally:
        web.kill()
    output = web.output()
    assert "kiln: error:" in output
    assert "run `kiln migrate`" in output


def test_refuses_to_start_without_a_reachable_database(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "kiln_config.py").write_text(
        f"c.CondaStore.database_url = 'postgresql://kiln@127.0.0.1:{free_port()}/kiln'\n"
        f"c.CondaStoreServer.port = {port}\n"
    )
    web = KilnWeb(tmp_path, port)
    try:
        assert web.process.wait(60) == 1
    finally:
        web.kill()
    assert "cannot connect to the database" in web.output()


def test_a_taken_port_is_reported_clearly(tmp_path: Path, database: TestDatabase) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        write_config(tmp_path, database, port)
        web = KilnWeb(tmp_path, port)
        try:
            assert web.process.wait(60) == 1
        finally:
            web.kill()
    assert f"cannot listen on 127.0.0.1:{port}" in web.output()

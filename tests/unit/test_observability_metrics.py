"""Kiln's Prometheus metrics: what processes record, what the database snapshot becomes, and the
multiprocess mode that adds up every process on a host."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.samples import Sample

from appliance.observability.cluster import ClusterSnapshot, StoreUsage, WorkerHeartbeat
from appliance.observability.exposition import CONTENT_TYPE, render
from appliance.observability.metrics import observe_build, observe_request
from appliance.observability.multiprocess import multiprocess_directory
from tests.fixtures.metrics import parse, value

REPOSITORY = Path(__file__).resolve().parents[2]


def scrape(snapshot: ClusterSnapshot | None = None) -> list[Sample]:
    body, content_type = render(snapshot or ClusterSnapshot(database_up=True))
    assert content_type == CONTENT_TYPE
    return parse(body)


def test_a_finished_build_records_its_duration_and_each_step() -> None:
    before = scrape()
    observe_build("FAILED", {"solve": 1.5, "install": 40.0})
    observe_build("FAILED", {"solve": 2.0}, duration=3.0)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("kiln_build_duration_seconds_count", status="FAILED") == 2
    assert delta("kiln_build_duration_seconds_sum", status="FAILED") == 41.5 + 3.0
    assert delta("kiln_build_duration_seconds_bucket", status="FAILED", le="60.0") == 2
    assert delta("kiln_build_duration_seconds_bucket", status="FAILED", le="30.0") == 1
    assert delta("kiln_build_step_duration_seconds_count", step="solve") == 2
    assert delta("kiln_build_step_duration_seconds_sum", step="install") == 40.0


def test_http_requests_are_counted_and_timed() -> None:
    before = scrape()
    observe_request("GET", "/api/v1/build/{build_id}/", 200, 0.02)
    observe_request("GET", "/api/v1/build/{build_id}/", 404, 0.001)
    after = scrape()
    route = "/api/v1/build/{build_id}/"

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert delta("kiln_http_requests_total", route=route, status="200") == 1
    assert delta("kiln_http_requests_total", route=route, status="404") == 1
    assert delta("kiln_http_request_duration_seconds_count", route=route, method="GET") == 2


def test_no_created_series_are_exposed() -> None:
    observe_request("GET", "/healthz", 200, 0.001)
    assert not [sample for sample in scrape() if sample.name.endswith("_created")]


def test_the_snapshot_reports_every_status_even_when_zero() -> None:
    found = scrape(
        ClusterSnapshot(
            database_up=True,
            builds={"COMPLETED": 2},
            jobs={("builds", "doing"): 1},
            queues=["builds", "upkeep"],
        )
    )
    assert value(found, "kiln_database_up") == 1
    assert value(found, "kiln_builds", status="COMPLETED") == 2
    for status in ("QUEUED", "BUILDING", "FAILED", "CANCELED"):
        assert value(found, "kiln_builds", status=status) == 0
    assert value(found, "kiln_queue_jobs", queue="builds", status="doing") == 1
    assert value(found, "kiln_queue_jobs", queue="upkeep", status="todo") == 0
    assert value(found, "kiln_workers", state="live") == 0
    assert value(found, "kiln_info") == 1


def test_workers_are_live_or_stalled_by_their_heartbeat_age() -> None:
    found = scrape(
        ClusterSnapshot(
            database_up=True,
            workers=[
                WorkerHeartbeat("1", 2.0),
                WorkerHeartbeat("2", 10.0),
                WorkerHeartbeat("3", 11.0),
            ],
            worker_timeout=10.0,
        )
    )
    assert value(found, "kiln_workers", state="live") == 2
    assert value(found, "kiln_workers", state="stalled") == 1
    assert value(found, "kiln_worker_heartbeat_age_seconds", worker="3") == 11.0


def test_without_the_database_its_series_are_missing_not_zero() -> None:
    store = StoreUsage(host="web-1", path="/store", total=100, used=30, free=70)
    found = scrape(ClusterSnapshot(database_up=False, stores=[store]))
    assert value(found, "kiln_database_up") == 0
    assert value(found, "kiln_builds") is None
    assert value(found, "kiln_queue_jobs") is None
    assert value(found, "kiln_workers") is None
    assert value(found, "kiln_store_filesystem_free_bytes", host="web-1") == 70
    assert value(found, "kiln_store_size_bytes") is None


def test_openmetrics_on_request() -> None:
    body, content_type = render(
        ClusterSnapshot(database_up=True), "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")


def test_multiprocess_mode_follows_the_environment(tmp_path: Path) -> None:
    assert multiprocess_directory({}) is None
    assert multiprocess_directory({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) == tmp_path


WRITER = """
from appliance.observability.metrics import observe_build, observe_request
observe_build("COMPLETED", {"solve": 1.0, "install": %(install)s})
observe_request("GET", "/healthz", 200, 0.01)
"""

READER = """
import sys
from appliance.observability.cluster import ClusterSnapshot
from appliance.observability.exposition import render
body, _ = render(ClusterSnapshot(database_up=True))
sys.stdout.write(body.decode())
"""


def run_python(code: str, metrics_dir: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={
            **os.environ,
            "PYTHONPATH": str(REPOSITORY),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_processes_write_and_a_third_reads_their_sum(tmp_path: Path) -> None:
    """Multiprocess mode: values outlive the processes that recorded them (counters and
    histograms keep counting across restarts), and a scrape adds them up."""
    run_python(WRITER % {"install": 10.0}, tmp_path)
    run_python(WRITER % {"install": 100.0}, tmp_path)
    assert len(list(tmp_path.glob("histogram_*.db"))) == 2

    found = parse(run_python(READER, tmp_path).encode())
    assert value(found, "kiln_build_duration_seconds_count", status="COMPLETED") == 2
    assert value(found, "kiln_build_duration_seconds_sum", status="COMPLETED") == 112.0
    assert value(found, "kiln_build_duration_seconds_bucket", status="COMPLETED", le="30.0") == 1
    assert value(found, "kiln_build_step_duration_seconds_count", step="solve") == 2
    assert value(found, "kiln_http_requests_total", route="/healthz", status="200") == 2
    # Only the files' metrics: another process's CPU or memory would be meaningless here.
    assert value(found, "process_resident_memory_bytes") is None
    assert value(found, "kiln_database_up") == 1

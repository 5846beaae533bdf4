"""Metrics of the whole installation, read at scrape time from what the database knows.

Builds, jobs and workers may live on many hosts; the database is the one place that sees them
all, so these values are never counted inside a process (which would be wrong as soon as there
are two). The web process reads a :class:`ClusterSnapshot` per scrape and
:class:`ClusterCollector` turns it into metric families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance import __version__

#: conda-store's build statuses (appliance.db.enums.BuildStatus), reported even when zero.
BUILD_STATUSES = ("QUEUED", "BUILDING", "COMPLETED", "FAILED", "CANCELED")
#: Procrastinate's job statuses that occur (``aborting`` is unused since Procrastinate 3).
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


@dataclass(frozen=True)
class WorkerHeartbeat:
    """A job-queue worker (``procrastinate_workers`` row) and how long ago it last reported
    alive. One ``kiln worker`` process may run several (one per queue group)."""

    worker: str
    age_seconds: float


@dataclass(frozen=True)
class StoreUsage:
    """Space on the file system of one host's store directory, in bytes."""

    host: str
    path: str
    total: int
    used: int
    free: int
    #: Bytes of the store directory itself, when it was measured.
    store_size: int | None = None
    #: Seconds since the values were measured (0: measured for this scrape).
    age_seconds: float = 0.0


@dataclass(frozen=True)
class ClusterSnapshot:
    """What one scrape found. ``database_up`` False means the database could not be read:
    builds, jobs and workers are then unknown (empty), not zero."""

    database_up: bool
    #: Builds that exist (not deleted), by status.
    builds: Mapping[str, int] = field(default_factory=dict)
    #: Jobs by (queue, status).
    jobs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: Queues reported even when they hold no job.
    queues: Sequence[str] = ()
    workers: Sequence[WorkerHeartbeat] = ()
    #: A worker is live when its last heartbeat is at most this many seconds old.
    worker_timeout: float = 10.0
    stores: Sequence[StoreUsage] = ()


class ClusterCollector(Collector):
    """Metric families of one :class:`ClusterSnapshot` (register it in a registry made for one
    scrape; it does not change between calls)."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        yield from _info()
        yield from _database(self.snapshot)
        if self.snapshot.database_up:
            yield from _builds(self.snapshot)
            yield from _jobs(self.snapshot)
            yield from _workers(self.snapshot)
        yield from _stores(self.snapshot.stores)


def _info() -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "kiln_info", "Version of the Kiln serving these metrics (always 1).", labels=["version"]
    )
    info.add_metric([__version__], 1)
    yield info


def _database(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "kiln_database_up",
        "1 when this scrape could read the database, 0 when not (kiln_builds, kiln_queue_jobs "
        "and kiln_workers are then missing from the scrape).",
        value=1 if snapshot.database_up else 0,
    )


def _builds(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    builds = GaugeMetricFamily(
        "kiln_builds", "Builds that exist (deleted ones excluded), by status.", labels=["status"]
    )
    for status in sorted({*BUILD_STATUSES, *snapshot.builds}):
        builds.add_metric([status], snapshot.builds.get(status, 0))
    yield builds


def _jobs(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "kiln_queue_jobs",
        "Jobs in the queue (Procrastinate) by queue and status: 'todo' is waiting, 'doing' is "
        "running; the others are finished jobs still kept.",
        labels=["queue", "status"],
    )
    queues = sorted({*snapshot.queues, *(queue for queue, _ in snapshot.jobs)})
    statuses = sorted({*JOB_STATUSES, *(status for _, status in snapshot.jobs)})
    for queue in queues:
        for status in statuses:
            jobs.add_metric([queue, status], snapshot.jobs.get((queue, status), 0))
    yield jobs


def _workers(snapshot: ClusterSnapshot) -> Iterator[Metric]:
    live = sum(1 for worker in snapshot.workers if worker.age_seconds <= snapshot.worker_timeout)
    workers = GaugeMetricFamily(
        "kiln_workers",
        f"Job-queue workers (Procrastinate's; a `kiln worker` process runs one per queue "
        f"group): 'live' sent a heartbeat within the last {snapshot.worker_timeout:g} s, "
        "'stalled' did not (their jobs are recovered).",
        labels=["state"],
    )
    workers.add_metric(["live"], live)
    workers.add_metric(["stalled"], len(snapshot.workers) - live)
    yield workers
    ages = GaugeMetricFamily(
        "kiln_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat, by the queue's worker id.",
        labels=["worker"],
    )
    for worker in snapshot.workers:
        ages.add_metric([worker.worker], worker.age_seconds)
    yield ages


def _stores(stores: Sequence[StoreUsage]) -> Iterator[Metric]:
    labels = ["host", "path"]
    families = {
        "total": GaugeMetricFamily(
            "kiln_store_filesystem_size_bytes",
            "Size of the file system holding a host's store directory.",
            labels=labels,
        ),
        "used": GaugeMetricFamily(
            "kiln_store_filesystem_used_bytes",
            "Used space on the file system holding a host's store directory.",
            labels=labels,
        ),
        "free": GaugeMetricFamily(
            "kiln_store_filesystem_free_bytes",
            "Space available to Kiln on the file system holding a host's store directory.",
            labels=labels,
        ),
    }
    size = GaugeMetricFamily(
        "kiln_store_size_bytes",
        "Bytes in a host's store directory (the built environments), when measured.",
        labels=labels,
    )
    age = GaugeMetricFamily(
        "kiln_store_sample_age_seconds",
        "Seconds since a host's store space was measured (0: measured for this scrape).",
        labels=labels,
    )
    for store in stores:
        key = [store.host, store.path]
        families["total"].add_metric(key, store.total)
        families["used"].add_metric(key, store.used)
        families["free"].add_metric(key, store.free)
        if store.store_size is not None:
            size.add_metric(key, store.store_size)
        age.add_metric(key, store.age_seconds)
    yield from families.values()
    yield size
    yield age

"""Disk usage of the store over time (``StorageSample``), for ``/metrics``, the admin console
and the free-space checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from appliance.common.errors import KilnError
from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment, Namespace, StorageSample
from appliance.schemas import api as wire
from appliance.services.access import Caller
from appliance.services.operations import require_operator


class UsageError(KilnError):
    """A request about disk usage that cannot be answered as asked."""

    code = "invalid"


#: Samples are kept this long (one a minute per host: about 130,000 rows per host).
SAMPLE_RETENTION = timedelta(days=90)


def record_storage_sample(
    session: Session, *, host: str, path: str, total: int, used: int, free: int
) -> None:
    """Record one sample of ``host``'s store directory ``path`` (bytes of its file system) with
    the size of the builds it holds, and prune that store's samples older than
    :data:`SAMPLE_RETENTION`."""
    store_size = session.scalar(
        select(func.coalesce(func.sum(Build.size), 0)).where(
            Build.status == BuildStatus.COMPLETED, Build.deleted_on.is_(None)
        )
    )
    session.add(
        StorageSample(
            host=host,
            path=path,
            disk_total=total,
            disk_used=used,
            disk_free=free,
            store_size=int(store_size or 0),
        )
    )
    session.execute(
        delete(StorageSample).where(
            StorageSample.host == host,
            StorageSample.path == path,
            StorageSample.sampled_on < datetime.now(UTC) - SAMPLE_RETENTION,
        )
    )


def namespace_usage(session: Session, caller: Caller) -> dict[str, wire.NamespaceUsage]:
    """``GET /api/v1/usage/``: per namespace the caller can see, its environments, builds and
    the bytes its builds take (deleted ones excluded)."""
    access = caller.access(session)
    environments = (
        select(Environment.namespace_id, func.count().label("n"))
        .where(Environment.active())
        .group_by(Environment.namespace_id)
        .subquery()
    )
    builds = (
        select(
            Environment.namespace_id,
            func.count(Build.id).label("n"),
            func.coalesce(func.sum(Build.size), 0).label("size"),
        )
        .join(Build, Build.environment_id == Environment.id)
        .where(Environment.active(), Build.deleted_on.is_(None))
        .group_by(Environment.namespace_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Namespace.name,
            func.coalesce(environments.c.n, 0),
            func.coalesce(builds.c.n, 0),
            func.coalesce(builds.c.size, 0),
        )
        .outerjoin(environments, environments.c.namespace_id == Namespace.id)
        .outerjoin(builds, builds.c.namespace_id == Namespace.id)
        .where(Namespace.active(), access.visible_namespaces(Namespace.name))
        .order_by(Namespace.name)
    )
    return {
        name: wire.NamespaceUsage(num_environments=int(e), num_builds=int(b), storage=int(s))
        for name, e, b, s in rows
    }


# --- the admin console's view -------------------------------------------------------------------

#: Most points of one store's trend in an answer (older samples are averaged into buckets).
TREND_POINTS = 120
#: The longest trend an answer covers.
MAX_TREND = SAMPLE_RETENTION


class StoreTrendPoint(msgspec.Struct, kw_only=True):
    """The average of a store's samples over one stretch of time."""

    at: datetime
    used: int
    free: int
    store_size: int | None


class StoreDisk(msgspec.Struct, kw_only=True):
    """A store directory's file system as last sampled, with its trend."""

    host: str
    path: str
    sampled_on: datetime
    total: int
    used: int
    free: int
    #: Bytes of the builds in the store, when measured.
    store_size: int | None
    #: Oldest first, at most :data:`TREND_POINTS`.
    trend: list[StoreTrendPoint]


class StorageOverview(msgspec.Struct, kw_only=True):
    """Every store directory that workers sample (one a minute per host), over ``hours``."""

    hours: int
    stores: list[StoreDisk]


def storage_overview(session: Session, caller: Caller, hours: int) -> StorageOverview:
    """The latest sample of each store and its trend over the last ``hours`` (1 up to the
    retention), averaged into at most :data:`TREND_POINTS` buckets; operators only."""
    require_operator(session, caller)
    longest = int(MAX_TREND.total_seconds() // 3600)
    if not 1 <= hours <= longest:
        raise UsageError(f"hours must be between 1 and {longest} (the samples' retention)")
    since = datetime.now(UTC) - timedelta(hours=hours)
    bucket_seconds = max(60, hours * 3600 // TREND_POINTS)
    bucket = func.floor(func.extract("epoch", StorageSample.sampled_on) / bucket_seconds)
    rows = session.execute(
        select(
            StorageSample.host,
            StorageSample.path,
            func.min(StorageSample.sampled_on),
            func.avg(StorageSample.disk_used),
            func.avg(StorageSample.disk_free),
            func.avg(StorageSample.store_size),
        )
        .where(StorageSample.sampled_on >= since)
        .group_by(StorageSample.host, StorageSample.path, bucket)
        .order_by(StorageSample.host, StorageSample.path, bucket)
    )
    trends: dict[tuple[str, str], list[StoreTrendPoint]] = {}
    for host, path, at, used, free, size in rows:
        trends.setdefault((host, path), []).append(
            StoreTrendPoint(
                at=at,
                used=int(used),
                free=int(free),
                store_size=None if size is None else int(size),
            )
        )
    latest = (
        select(StorageSample)
        .distinct(StorageSample.host, StorageSample.path)
        .order_by(StorageSample.host, StorageSample.path, StorageSample.sampled_on.desc())
    )
    stores = [
        StoreDisk(
            host=sample.host,
            path=sample.path,
            sampled_on=sample.sampled_on,
            total=sample.disk_total,
            used=sample.disk_used,
            free=sample.disk_free,
            store_size=sample.store_size,
            trend=trends.get((sample.host, sample.path), [])[-TREND_POINTS:],
        )
        for sample in session.scalars(latest)
    ]
    return StorageOverview(hours=hours, stores=stores)

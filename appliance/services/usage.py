"""Disk usage of the store over time (``StorageSample``), for ``/metrics``, the admin console
and the free-space checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from appliance.db.enums import BuildStatus
from appliance.db.models import Build, StorageSample

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

"""Disk usage of the store over time (``StorageSample``), for ``/metrics``, the admin console
and the free-space checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from appliance.db.enums import BuildStatus
from appliance.db.models import Build, Environment, Namespace, StorageSample
from appliance.schemas import api as wire
from appliance.services.access import Caller

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

"""Samples of the store's disk usage over time (the admin console's trend, ``/metrics``, and
the ``storage_threshold`` check). Each worker host samples the file system of its own store
directory; ``host`` and ``path`` say which one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from appliance.db.models.base import Base, now


class StorageSample(Base):
    """Disk space of a store directory's file system at one moment, in bytes."""

    __tablename__ = "storage_sample"

    id: Mapped[int] = mapped_column(primary_key=True)
    sampled_on: Mapped[datetime] = mapped_column(server_default=now())
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str]
    disk_total: Mapped[int]
    disk_used: Mapped[int]
    disk_free: Mapped[int]
    #: Bytes of the store directory itself (sum of the builds' sizes), when measured.
    store_size: Mapped[int | None]

    __table_args__ = (
        # The trend of one store, and the latest sample of each.
        Index("ix_storage_sample_host_path_sampled_on", "host", "path", "sampled_on"),
        # The trend of all stores, and pruning old samples.
        Index("ix_storage_sample_sampled_on", "sampled_on"),
    )

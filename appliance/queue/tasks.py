"""Names and queues of Kiln's jobs: the contract between services (which defer) and workers.

Jobs carry ids, never objects: the worker reads the current state from the database, so a job
that runs late (or twice) sees what is true now.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskName:
    """A job kind: its Procrastinate task name and the queue it runs on."""

    name: str
    queue: str


#: Build an environment: ``{"build_id": int}``.
BUILD = TaskName("kiln.build", "builds")

#: Queues a worker serves, in the order it takes jobs from them.
QUEUES = (BUILD.queue,)


def build_lock(build_id: int) -> str:
    """Procrastinate lock of a build's jobs: never two jobs on one build at once."""
    return f"build-{build_id}"

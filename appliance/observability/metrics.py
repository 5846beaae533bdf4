"""The metrics Kiln's processes record, and the functions that record them.

Only counters and histograms are recorded in processes: both add up correctly across processes
(and across restarts of a process) in multiprocess mode. Anything that is a current state
(builds by status, queue depth, live workers, free space) is read from the database at scrape
time instead (:mod:`appliance.observability.cluster`).

Label values are kept to small, fixed sets (route templates, build statuses, step names), never
ids or paths, so the number of series stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram, disable_created_metrics

# The `_created` series double every counter and histogram in plain mode only (multiprocess mode
# never has them); Prometheus does not need them. A prometheus_client setting for the process.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Seconds; builds take from seconds (a cached solve) to an hour (a large image).
BUILD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
#: Seconds; one step of a build.
STEP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Seconds; one HTTP request (artifact downloads are long, API calls short).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

BUILD_SECONDS = Histogram(
    "kiln_build_duration_seconds",
    "Time from a worker starting a build to its end, by the build's final status "
    "(COMPLETED, FAILED, CANCELED); recorded by the worker that ran it.",
    ["status"],
    buckets=BUILD_BUCKETS,
)

BUILD_STEP_SECONDS = Histogram(
    "kiln_build_step_duration_seconds",
    "Time one step of a build took (solve, lock, install, activate, artifacts, ...); "
    "recorded by the worker that ran it.",
    ["step"],
    buckets=STEP_BUCKETS,
)

HTTP_REQUESTS = Counter(
    "kiln_http_requests",
    "HTTP requests answered, by method, route template (not the raw path; '<unmatched>' for "
    "requests no route matched) and status code.",
    ["method", "route", "status"],
)

HTTP_REQUEST_SECONDS = Histogram(
    "kiln_http_request_duration_seconds",
    "Time from receiving an HTTP request to sending the end of its response, by method and "
    "route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)


def observe_build(status: str, steps: Mapping[str, float], duration: float | None = None) -> None:
    """Record a finished build: its ``status`` (``"COMPLETED"``, ``"FAILED"`` or
    ``"CANCELED"``), the seconds each step took (``{"solve": 1.2, "install": 8.5, ...}``; only
    steps that ran), and its total ``duration`` in seconds (default: the sum of the steps).

    Workers call this once per build, after recording the outcome in the database. Negative
    durations (a clock step backwards) are recorded as 0.
    """
    for step, seconds in steps.items():
        BUILD_STEP_SECONDS.labels(step=step).observe(max(seconds, 0.0))
    total = sum(steps.values()) if duration is None else duration
    BUILD_SECONDS.labels(status=str(status)).observe(max(total, 0.0))


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Record one answered HTTP request (the web process's middleware calls this)."""
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(max(seconds, 0.0))

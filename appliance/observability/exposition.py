"""The text ``/metrics`` serves: this host's process metrics plus one cluster snapshot.

In multiprocess mode the process metrics are the sum over the files every process on this host
wrote (web workers, build workers, exited ones included: counters and histograms keep counting
across restarts). In plain mode they are the serving process's own, with its CPU, memory and
garbage-collector metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from appliance.observability.cluster import ClusterCollector, ClusterSnapshot
from appliance.observability.multiprocess import multiprocess_directory

#: Content type of the classic text format (what Prometheus asks for by default).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _Scrape(Collector):
    """Several collectors read as one, for one scrape."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def process_metrics() -> Collector:
    """This host's recorded metrics: every process's files in multiprocess mode, else this
    process's registry. Made per scrape (the multiprocess reader must not be registered
    anywhere long-lived)."""
    directory = multiprocess_directory()
    if directory is not None:
        return MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
    return REGISTRY


def render(snapshot: ClusterSnapshot, accept: str = "") -> tuple[bytes, str]:
    """The exposition for a scrape whose ``Accept`` header is ``accept``: the body and its
    content type (the classic text format unless OpenMetrics is asked for).

    Reads files in multiprocess mode: call it off the event loop.
    """
    encode, content_type = choose_encoder(accept)
    body = encode(_Scrape([process_metrics(), ClusterCollector(snapshot)]))
    return body, content_type


class _ProcessMetrics(Collector):
    """:func:`process_metrics`, resolved at each scrape."""

    def collect(self) -> Iterable[Metric]:
        yield from process_metrics().collect()


def serve_process_metrics(address: str, port: int) -> None:
    """Serve this host's process metrics at ``http://address:port/metrics`` from a daemon
    thread, for hosts that run workers without a web process (scale-out). The cluster-wide
    figures (queue depth, builds by status) come from the web processes' ``/metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    start_http_server(port, addr=address, registry=registry)

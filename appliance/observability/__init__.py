"""Kiln's Prometheus metrics: their definitions, and how every process's values reach ``/metrics``.

A low layer (it imports only ``common`` and ``config``), so the web process, the workers and the
supervisor can all record metrics without importing each other:

- :mod:`appliance.observability.metrics`: the metrics processes record (HTTP requests, build and
  build-step durations) and the functions that record them (:func:`observe_build`,
  :func:`observe_request`).
- :mod:`appliance.observability.cluster`: metrics read at scrape time from what the database
  knows (builds, queue depth, worker heartbeats, store space): the database is the truth across
  hosts, so these are never counted in a process.
- :mod:`appliance.observability.exposition`: the text ``/metrics`` serves, correct across
  processes.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``kiln serve`` sets it to
``<data dir>/run/prometheus`` for every child, and ``kiln web --workers N`` to a private
directory), each process writes its values to files there and ``/metrics`` adds up the files of
all processes on the host, live or exited. The variable must be set before the process imports
``prometheus_client`` (it chooses its storage then), so only entry points set it, never library
code. Without it, ``/metrics`` shows the serving process's own values (plus its CPU and memory).

This package's ``__init__`` imports nothing, so an entry point can use
:mod:`appliance.observability.multiprocess` to decide on the mode before ``prometheus_client``
is loaded. Import from the modules: ``from appliance.observability.metrics import
observe_build``.
"""

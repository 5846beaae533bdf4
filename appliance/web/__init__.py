"""The web process (``kiln web``): a Litestar app served by granian.

- :mod:`appliance.web.app`: :func:`create_app`, the one app factory, built from
  ``_configure_*`` steps.
- :mod:`appliance.web.settings`: :class:`WebSettings`, the plain values an app is built from.
- :mod:`appliance.web.probes`: ``/healthz`` and ``/readyz``.
- :mod:`appliance.web.metrics`: ``/metrics`` and the request-metrics middleware.
- :mod:`appliance.web.errors`: domain errors to HTTP responses (the one place).
- :mod:`appliance.web.status`: where probes and scrapes read the database's facts.
- :mod:`appliance.web.server`: granian: worker processes, signals, shutdown.

Litestar and granian are imported only in this layer (and the HTTP route groups).
"""

from appliance.web.app import create_app
from appliance.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]

"""What the web app needs from the configuration, as plain values.

A frozen dataclass of strings and numbers: it is handed to every granian worker process (pickled
when workers are spawned rather than forked) and each builds its own app from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.loader import KilnConfig
from appliance.queue.app import WorkerSettings

#: Workers send a heartbeat every 2 s and count as stalled after this long (queue.app).
DEFAULT_HEARTBEAT_TIMEOUT = WorkerSettings().stalled_worker_timeout


@dataclass(frozen=True)
class WebSettings:
    """Settings of one web app (``CondaStoreServer`` options and the database to use)."""

    #: SQLAlchemy URL of Kiln's database.
    database_url: str
    #: ``CondaStoreServer.url_prefix``, normalised: ``"/"`` or ``"/path"`` without a slash at
    #: the end.
    url_prefix: str = "/"
    #: ``CondaStoreServer.enable_metrics``: serve ``/metrics``.
    enable_metrics: bool = True
    #: ``CondaStoreServer.enable_api``: serve the REST API and login routes.
    enable_api: bool = True
    #: ``CondaStoreServer.enable_ui``: serve the web UI (``/ui/``; it needs the API's context,
    #: and its pages read the API's log and artifact routes).
    enable_ui: bool = True
    #: ``CondaStoreServer.enable_registry``: serve the OCI registry at ``/v2/``. Off unless
    #: asked for here (tests build apps without it); :meth:`from_config` takes the option,
    #: which is on by default.
    enable_registry: bool = False
    #: The configuration file and data dir each web worker process loads the configuration
    #: from (the API needs more of it than these plain values). None: the defaults.
    config_file: str | None = None
    data_dir: str | None = None
    #: ``CondaStore.store_directory``: its file system's space is reported when no worker has
    #: sampled it (and it exists on this host).
    store_directory: str | None = None
    #: ``/readyz`` needs a worker heartbeat at most this many seconds old.
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    #: Seconds a probe or a scrape waits for the database before reporting it unavailable.
    database_timeout: float = 5.0

    @classmethod
    def from_config(cls, config: KilnConfig, *, database_url: str) -> WebSettings:
        """The settings ``config`` gives, on the database at ``database_url`` (the configured
        one, or the managed PostgreSQL's: the caller resolves which)."""
        server = config.server
        return cls(
            database_url=database_url,
            url_prefix=server.url_prefix,
            enable_metrics=server.enable_metrics,
            enable_api=server.enable_api,
            enable_ui=server.enable_ui,
            enable_registry=server.enable_registry,
            config_file=str(config.config_file) if config.config_file else None,
            data_dir=str(config.data_dir.root),
            store_directory=str(config.conda_store.store_directory),
        )

    def under_prefix(self, path: str) -> str:
        """``path`` (``"/metrics"``) under :attr:`url_prefix` (``"/kiln/metrics"``)."""
        prefix = self.url_prefix.rstrip("/")
        return f"{prefix}{path}" if prefix else path

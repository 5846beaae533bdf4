"""Kiln's configuration: traitlets classes with conda-store's names, and their loader.

Typical use::

    from appliance.config import load_config

    config = load_config(args.config, args.data_dir)   # or load_config_from_args(args)
    config.conda_store.store_directory                 # "<data dir>/store" unless configured
    config.builder.virtual_packages_for("linux-64")
    config.storage                                      # LocalStorage or S3Storage instance

Modules: ``store`` (CondaStore), ``builder`` (Builder), ``server`` (CondaStoreServer),
``worker`` (CondaStoreWorker), ``storage`` (LocalStorage, S3Storage), ``auth``
(Authentication classes and backends), ``obsolete`` (conda-store classes accepted and ignored),
``catalog`` (the list of known classes), ``compat`` (``conda_store_server.*`` names for
configuration files), ``loader``, ``generate``, ``show``, ``verify``.
``images`` (Images) configures the OCI images of builds.
``postgres`` (ManagedPostgres) configures the PostgreSQL server `kiln serve` runs itself.
"""

from appliance.config.auth import (
    Authentication,
    AuthenticationBackend,
    AuthorizationBackend,
    DummyAuthentication,
    GenericOAuthAuthentication,
    GithubOAuthAuthentication,
    JupyterHubOAuthAuthentication,
    LocalAccountAuthentication,
    RBACAuthorizationBackend,
)
from appliance.config.base import KilnConfigurable
from appliance.config.builder import Builder
from appliance.config.images import Images
from appliance.config.loader import (
    InvalidConfiguration,
    KilnConfig,
    Problem,
    load_config,
    load_config_from_args,
)
from appliance.config.postgres import ManagedPostgres
from appliance.config.server import CondaStoreServer
from appliance.config.storage import LocalStorage, S3Storage, Storage
from appliance.config.store import CondaStore
from appliance.config.supervisor import Supervisor
from appliance.config.worker import CondaStoreWorker

__all__ = [
    "Authentication",
    "AuthenticationBackend",
    "AuthorizationBackend",
    "Builder",
    "CondaStore",
    "CondaStoreServer",
    "CondaStoreWorker",
    "DummyAuthentication",
    "GenericOAuthAuthentication",
    "GithubOAuthAuthentication",
    "Images",
    "InvalidConfiguration",
    "JupyterHubOAuthAuthentication",
    "KilnConfig",
    "KilnConfigurable",
    "LocalAccountAuthentication",
    "LocalStorage",
    "ManagedPostgres",
    "Problem",
    "RBACAuthorizationBackend",
    "S3Storage",
    "Storage",
    "Supervisor",
    "load_config",
    "load_config_from_args",
]

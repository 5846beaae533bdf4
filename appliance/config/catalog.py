"""The explicit list of Kiln's configurable classes.

The loader, ``kiln config generate`` and ``kiln config verify`` know exactly these classes (a
section of a configuration file naming another class is reported as unknown). A new
configurable class is added here, in the order ``generate`` should print it.
"""

from __future__ import annotations

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
from appliance.config.obsolete import ContainerRegistry
from appliance.config.postgres import ManagedPostgres
from appliance.config.server import CondaStoreServer
from appliance.config.storage import LocalStorage, S3Storage
from appliance.config.store import CondaStore
from appliance.config.supervisor import Supervisor
from appliance.config.worker import CondaStoreWorker

CLASSES: tuple[type[KilnConfigurable], ...] = (
    CondaStore,
    Builder,
    Images,
    CondaStoreServer,
    CondaStoreWorker,
    ManagedPostgres,
    Supervisor,
    LocalStorage,
    S3Storage,
    Authentication,
    LocalAccountAuthentication,
    DummyAuthentication,
    GenericOAuthAuthentication,
    GithubOAuthAuthentication,
    JupyterHubOAuthAuthentication,
    AuthenticationBackend,
    AuthorizationBackend,
    RBACAuthorizationBackend,
    ContainerRegistry,
)

CLASSES_BY_NAME: dict[str, type[KilnConfigurable]] = {cls.__name__: cls for cls in CLASSES}

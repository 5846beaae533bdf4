"""``ManagedPostgres``: the PostgreSQL server `kiln serve` runs when no database URL is set.

Only used when ``CondaStore.database_url`` is unset. The defaults give a server that nobody
but Kiln can reach: a unix socket in the data dir (or under /tmp when the data dir's path is too
long for a socket), no TCP port, and, when Kiln runs as root, a dedicated unprivileged system
user for the server processes.
"""

from __future__ import annotations

import re
from typing import Any

from traitlets import Dict, Float, Integer, TraitError, Unicode, validate

from appliance.config.base import KilnConfigurable

#: Server settings Kiln sets itself (from the options of this class or the data dir layout).
MANAGED_SETTINGS = frozenset(
    {
        "config_file",
        "data_directory",
        "hba_file",
        "ident_file",
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        "external_pid_file",
        "logging_collector",
    }
)

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_LISTEN_ITEM = re.compile(r"^(\*|[A-Za-z0-9:][A-Za-z0-9.:%_-]*)$")
#: POSIX portable user names as shadow-utils' useradd accepts them.
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


def setting_value(value: Any) -> str:
    """How a setting value is written on the server's command line (``True`` -> ``on``)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class ManagedPostgres(KilnConfigurable):
    """The PostgreSQL server Kiln runs in <data dir>/pg when CondaStore.database_url is unset."""

    listen_address = Unicode(
        "",
        help="""
        TCP addresses the managed PostgreSQL listens on, comma-separated ("127.0.0.1",
        "0.0.0.0", "*", a host name). Empty (the default) means no TCP at all: Kiln's own
        processes connect over a unix socket in the data dir, authenticated by their operating
        system user (peer authentication). Over TCP every connection needs the password of the
        database user "kiln", kept in <data dir>/secrets/postgres-password (scram-sha-256).
        Open it to inspect the database with a client on another host, or to run `kiln web` /
        `kiln worker` elsewhere against this server.

        Example: c.ManagedPostgres.listen_address = "127.0.0.1"
        """,
    ).tag(config=True)

    @validate("listen_address")
    def _validate_listen_address(self, proposal: Any) -> str:
        value: str = proposal.value.strip()
        if not value:
            return ""
        items = [item.strip() for item in value.split(",")]
        for item in items:
            if not _LISTEN_ITEM.match(item):
                raise TraitError(
                    f"ManagedPostgres.listen_address: {item!r} is not an address; give IP "
                    "addresses or host names separated by commas (e.g. '127.0.0.1'), '*' for "
                    "every interface, or '' for the unix socket only"
                )
        return ",".join(items)

    port = Integer(
        5432,
        min=1,
        max=65535,
        help="""
        TCP port of the managed PostgreSQL, used when listen_address is set. It also names the
        unix socket file (.s.PGSQL.<port>), so clients always get it in Kiln's database URL.

        Example: c.ManagedPostgres.port = 5433
        """,
    ).tag(config=True)

    system_user = Unicode(
        "kiln-postgres",
        help="""
        Operating system user the PostgreSQL processes run as when Kiln itself runs as root
        (PostgreSQL refuses to run as root). Kiln creates it as a system user without a home
        or login shell on first start if it does not exist (with useradd), and gives it only
        <data dir>/pg/data and the socket directory. Every directory above the data dir must
        be searchable by it (the x permission bit for others); Kiln does not change the
        permissions of directories it does not own, it stops with a message naming the
        directory instead. Not used when Kiln runs as another user: PostgreSQL then runs as
        that same user.

        Example: c.ManagedPostgres.system_user = "postgres"
        """,
    ).tag(config=True)

    @validate("system_user")
    def _validate_system_user(self, proposal: Any) -> str:
        value: str = proposal.value
        if value == "root":
            raise TraitError(
                "ManagedPostgres.system_user: PostgreSQL refuses to run as root; name an "
                "unprivileged user (the default 'kiln-postgres' is created when missing)"
            )
        if not _USER_NAME.match(value):
            raise TraitError(
                f"ManagedPostgres.system_user: {value!r} is not a valid user name (lower-case "
                "letters, digits, '_' and '-', starting with a letter or '_', at most 31 "
                "characters)"
            )
        return value

    startup_timeout = Float(
        60.0,
        help="""
        Seconds to wait for the managed PostgreSQL to accept connections after it was started
        (crash recovery after an unclean stop can take a while on a big database). On timeout
        Kiln stops and shows the end of <data dir>/pg/postgres.log.

        Example: c.ManagedPostgres.startup_timeout = 300
        """,
    ).tag(config=True)

    shutdown_timeout = Float(
        30.0,
        help="""
        Seconds to wait for the managed PostgreSQL to finish a fast shutdown (sessions are
        ended, a checkpoint is written) before Kiln asks for an immediate shutdown and, if that
        does not end it within a few seconds either, kills it. An immediate shutdown or a kill
        is safe but makes the next start run crash recovery.

        Example: c.ManagedPostgres.shutdown_timeout = 120
        """,
    ).tag(config=True)

    @validate("startup_timeout", "shutdown_timeout")
    def _validate_timeout(self, proposal: Any) -> float:
        value = float(proposal.value)
        if not value > 0:
            raise TraitError(
                f"ManagedPostgres.{proposal.trait.name}: {proposal.value!r} must be a positive "
                "number of seconds"
            )
        return value

    extra_settings = Dict(
        {},
        help="""
        Further PostgreSQL server settings (postgresql.conf names and values), given to the
        server on its command line at every start. Values may be strings, numbers or booleans
        (True is written as "on"). Settings Kiln manages itself (listen_addresses, port,
        unix_socket_directories, hba_file, ...) are refused: use the options of this class.
        With fsync off (test and demo machines only) the cluster is also created without
        syncing to disk.

        Example: c.ManagedPostgres.extra_settings = {"shared_buffers": "1GB", "work_mem": "64MB"}
        """,
    ).tag(config=True)

    @validate("extra_settings")
    def _validate_extra_settings(self, proposal: Any) -> dict[str, Any]:
        value: dict[Any, Any] = proposal.value
        for name, setting in value.items():
            if not isinstance(name, str) or not _SETTING_NAME.match(name):
                raise TraitError(
                    f"ManagedPostgres.extra_settings: {name!r} is not a PostgreSQL setting name"
                )
            if name.lower() in MANAGED_SETTINGS:
                raise TraitError(
                    f"ManagedPostgres.extra_settings: {name!r} is set by Kiln; use "
                    "ManagedPostgres.listen_address / ManagedPostgres.port for network access"
                )
            if not isinstance(setting, str | int | float | bool):
                raise TraitError(
                    f"ManagedPostgres.extra_settings[{name!r}]: {setting!r} is not a string, "
                    "number or boolean"
                )
            if isinstance(setting, str) and ("\n" in setting or "\x00" in setting):
                raise TraitError(
                    f"ManagedPostgres.extra_settings[{name!r}]: the value must be one line"
                )
        return dict(value)

    def server_settings(self) -> dict[str, str]:
        """``extra_settings`` as the strings given to ``postgres -c name=value``."""
        return {name: setting_value(value) for name, value in self.extra_settings.items()}

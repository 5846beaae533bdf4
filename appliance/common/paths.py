"""Where Kiln keeps its state: the data dir and its fixed layout (DESIGN.md "Data dir")."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Environment variable that selects the data dir when ``--data-dir`` is not given.
DATA_DIR_ENV = "KILN_DATA_DIR"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the data dir to use when none is given on the command line.

    Order: ``$KILN_DATA_DIR``; ``$STATE_DIRECTORY`` (set by systemd's ``StateDirectory=kiln``);
    ``$XDG_DATA_HOME/kiln``; ``~/.local/share/kiln``.
    """
    env = os.environ if environ is None else environ
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    if env.get("STATE_DIRECTORY"):
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]) / "kiln"
    return Path.home() / ".local" / "share" / "kiln"


@dataclass(frozen=True)
class DataDir:
    """The layout of a data dir. Pure path arithmetic: nothing is created on construction."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "kiln_config.py"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def postgres(self) -> Path:
        return self.root / "pg"

    @property
    def postgres_log(self) -> Path:
        """The managed PostgreSQL's own log (its output; moved to ``postgres.log.1`` at a
        start when it has grown large)."""
        return self.postgres / "postgres.log"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def package_cache(self) -> Path:
        return self.root / "pkgs"

    @property
    def repodata_cache(self) -> Path:
        return self.root / "cache" / "repodata"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        """The log files of Kiln's own processes, ``<service>.jsonl`` (JSON lines, rotated by
        size: appliance.common.service_log); the admin API reads them."""
        return self.root / "logs"

"""Finish a prefix and make it current: variables, history, permissions, the ``envs/<name>`` link.

Ordering matters for users: everything that can fail happens before :func:`point_environment_at`,
which is a single atomic ``rename`` of a symlink. A failed build therefore never becomes the
current environment, and readers of ``envs/<name>`` see either the old or the new prefix.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from rattler import PrefixRecord

from appliance.builder.settings import Permissions
from appliance.common.errors import BuildError

ACTIVATE_SCRIPT = "etc/conda/activate.d/kiln-variables.sh"
DEACTIVATE_SCRIPT = "etc/conda/deactivate.d/kiln-variables.sh"


def write_variables(prefix: Path, variables: Mapping[str, str]) -> None:
    """Make activation set the spec's ``variables``.

    Two mechanisms, because environments are activated in two ways: ``conda-meta/state``
    (``env_vars``, read by ``conda activate``) and ``etc/conda/activate.d`` /
    ``deactivate.d`` shell scripts (run by conda-pack's ``bin/activate`` and by conda).
    """
    if not variables:
        return
    state_path = prefix / "conda-meta" / "state"
    state: dict[str, object] = {}
    if state_path.exists():
        state = json.loads(state_path.read_text() or "{}")
    state["env_vars"] = {key: str(value) for key, value in variables.items()}
    state_path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    activate = prefix / ACTIVATE_SCRIPT
    deactivate = prefix / DEACTIVATE_SCRIPT
    activate.parent.mkdir(parents=True, exist_ok=True)
    deactivate.parent.mkdir(parents=True, exist_ok=True)
    activate.write_text(
        "# Written by Kiln from the specification's 'variables'.\n"
        + "".join(
            f"export {key}={shlex.quote(str(value))}\n" for key, value in sorted(variables.items())
        )
    )
    deactivate.write_text(
        "# Written by Kiln from the specification's 'variables'.\n"
        + "".join(f"unset {key}\n" for key in sorted(variables))
    )


def write_history(prefix: Path, records: Iterable[PrefixRecord], command: str) -> None:
    """Write ``conda-meta/history`` as conda does, so conda tools recognise the prefix."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"==> {stamp} <==", f"# cmd: {command}"]
    lines += [
        f"+{record.channel}::{record.name.normalized}-{record.version}-{record.build}"
        for record in records
    ]
    (prefix / "conda-meta" / "history").write_text("\n".join(lines) + "\n")


def make_metadata_readable(prefix: Path) -> None:
    """Make ``conda-meta/*`` readable by everyone.

    py-rattler writes them 0600, but other users of the environment need to read them.
    """
    for path in (prefix / "conda-meta").iterdir():
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o044)


def apply_permissions(prefix: Path, permissions: Permissions) -> None:
    """Apply ``default_uid``/``default_gid``/``default_permissions`` to every path in ``prefix``.

    Symlinks are never followed. With ``mode`` set, directories and executables get the mode as
    given and other files get it without execute bits (``775`` -> ``664`` for data files).
    """
    if permissions.uid is None and permissions.gid is None and permissions.mode is None:
        return
    mode = int(permissions.mode, 8) if permissions.mode is not None else None
    uid = -1 if permissions.uid is None else permissions.uid
    gid = -1 if permissions.gid is None else permissions.gid
    try:
        for root, dirs, files in os.walk(prefix):
            for name in [*dirs, *files, ""]:
                path = os.path.join(root, name) if name else root
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    if uid != -1 or gid != -1:
                        os.lchown(path, uid, gid)
                    continue
                if uid != -1 or gid != -1:
                    os.chown(path, uid, gid)
                if mode is not None:
                    executable = stat.S_ISDIR(info.st_mode) or bool(info.st_mode & 0o111)
                    os.chmod(path, mode if executable else mode & ~0o111)
    except OSError as error:
        raise BuildError(
            f"cannot apply ownership {permissions.uid}:{permissions.gid} / mode {permissions.mode} "
            f"to {prefix}: {error}"
        ) from error


def point_environment_at(link: Path, prefix: Path) -> None:
    """Atomically make ``link`` a relative symlink to ``prefix`` (replacing any previous link)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() and not link.is_symlink():
        raise BuildError(f"{link} exists and is not a symlink; move it away so Kiln can manage it")
    target = os.path.relpath(prefix, link.parent)
    staging = link.with_name(f".{link.name}.kiln-{os.getpid()}")
    staging.unlink(missing_ok=True)
    os.symlink(target, staging)
    os.replace(staging, link)

"""The files of builds in the store directory: where a build's prefix is, and removing prefixes
and ``envs/`` links without ever touching anything outside the store.

Every removal of a directory is guarded: the path must lie strictly inside the store directory
or the build's own build directory (``CondaStore.build_directory`` may point elsewhere) once
symlinks in its parents are resolved, so a build key or a recorded ``DIRECTORY`` path can never
make Kiln remove ``/`` or another tree; and a symlink is removed as a link, never followed.
An ``envs/`` link is removed only when it points at a prefix of the build being removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from appliance.builder.activate import point_environment_at
from appliance.builder.settings import BuildSettings
from appliance.common.errors import KilnError
from appliance.services.deletion import BuildFiles

logger = logging.getLogger("kiln.worker")


class OutsideStore(KilnError):
    """Refused to remove a path that is not inside the store or build directory."""

    code = "outside_store"


def prefix_of(settings: BuildSettings, files: BuildFiles) -> Path:
    """The prefix directory of a build (the build engine's layout: key version 3 prefixes sit
    directly in the store, others under the namespace's build directory)."""
    return settings.build_prefix(
        files.namespace, files.environment, files.build_key, files.key_version
    )


def environment_link(settings: BuildSettings, files: BuildFiles) -> Path | None:
    """The ``envs/<name>`` link of a build's environment (None: key version 3 has none)."""
    return settings.current_link(files.namespace, files.environment, files.key_version)


def build_roots(settings: BuildSettings, files: BuildFiles) -> tuple[Path, ...]:
    """The directories a build's files may be removed from."""
    return (settings.store_directory, settings.build_parent(files.namespace, files.environment))


def _inside(roots: Iterable[Path], path: Path) -> bool:
    if path.name in ("", ".", "..") or not path.is_absolute():
        return False
    candidate = os.path.join(os.path.realpath(path.parent), path.name)
    for root in roots:
        real_root = os.path.realpath(root)
        if candidate != real_root and os.path.commonpath([real_root, candidate]) == real_root:
            return True
    return False


def _retry_writable(
    function: Any, path: str, error: tuple[type[BaseException], BaseException, TracebackType]
) -> None:
    """``rmtree`` error handler: a path already gone is fine; a directory without write
    permission (``default_permissions`` such as ``555``) is made writable and tried again."""
    exception = error[1]
    if isinstance(exception, FileNotFoundError):
        return
    if isinstance(exception, PermissionError):
        parent = os.path.dirname(path)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
        function(path)
        return
    raise exception


def remove_tree(path: Path, *, roots: Iterable[Path]) -> bool:
    """Remove the directory (or symlink) ``path``, which must be strictly inside one of
    ``roots``; False when there was nothing to remove. Raises :class:`OutsideStore` for any
    other path and ``OSError`` when the removal fails."""
    roots = tuple(roots)
    if not _inside(roots, path):
        shown = ", ".join(str(root) for root in roots)
        raise OutsideStore(f"refusing to remove {path}: it is not inside {shown}")
    if os.path.islink(path):
        os.unlink(path)
        return True
    if not os.path.lexists(path):
        return False
    if not os.path.isdir(path):
        os.unlink(path)
        return True
    shutil.rmtree(path, onerror=_retry_writable)
    return True


def _link_target(link: Path) -> str | None:
    if not os.path.islink(link):
        return None
    return os.path.normpath(os.path.join(link.parent, os.readlink(link)))


def link_points_at(link: Path, prefixes: Iterable[Path]) -> bool:
    """Whether the symlink ``link`` points at one of ``prefixes`` (present or not)."""
    target = _link_target(link)
    return target is not None and target in {os.path.normpath(p) for p in prefixes}


def remove_link_to(link: Path, prefixes: Iterable[Path]) -> bool:
    """Remove the ``envs/`` symlink ``link`` if it points at one of ``prefixes``.

    A link pointing anywhere else is left alone: the environment's name may already belong to
    a new environment whose build moved the link.
    """
    if not link_points_at(link, prefixes):
        return False
    os.unlink(link)
    return True


def clear_interrupted_build(
    settings: BuildSettings, files: BuildFiles, current_build_key: str | None
) -> None:
    """Remove an interrupted build's partial prefix (for recovery).

    The build engine moves the ``envs/<name>`` link only after everything else succeeded, so
    normally the link never pointed at this prefix. If it does (the worker died between moving
    the link and recording the build), it is put back on the environment's current build, or
    removed when there is none, before the prefix goes.
    """
    prefix = prefix_of(settings, files)
    link = environment_link(settings, files)
    if link is not None and link_points_at(link, [prefix]):
        current = prefix.parent / current_build_key if current_build_key is not None else None
        if current is not None and current.is_dir():
            point_environment_at(link, current)
            logger.warning(
                "%s pointed at interrupted build %d; back on %s", link, files.build_id, current
            )
        else:
            os.unlink(link)
            logger.warning("%s pointed at interrupted build %d; removed", link, files.build_id)
    if remove_tree(prefix, roots=build_roots(settings, files)):
        logger.info("removed the partial prefix %s of build %d", prefix, files.build_id)

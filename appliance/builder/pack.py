"""The conda-pack archive of a build (the CONDA_PACK artifact)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from appliance.common.errors import BuildError


def _make_bundled_scripts_readable() -> None:
    """In a PyInstaller onefile, bundled files are unpacked 0600 and conda-pack copies that mode
    into the archive (``bin/activate`` unreadable for other users). Fix the bundle, not the env."""
    if not getattr(sys, "frozen", False):
        return
    import conda_pack

    root = Path(conda_pack.__file__).parent
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(path.stat().st_mode | 0o044)


def pack_prefix(prefix: Path, output: Path, *, threads: int | None = None) -> Path:
    """Pack ``prefix`` into ``output`` (``.tar.gz``) with conda-pack; returns ``output``.

    The archive is relocatable: unpack it anywhere and run ``bin/conda-unpack`` to rewrite the
    prefix. Uses up to ``threads`` compression threads (default: all CPUs).
    """
    import conda_pack

    _make_bundled_scripts_readable()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        conda_pack.pack(
            prefix=str(prefix),
            output=str(partial),
            format="tar.gz",
            n_threads=threads or os.cpu_count() or 1,
            compress_level=4,
            verbose=False,
            force=True,
            ignore_missing_files=False,
        )
    except conda_pack.CondaPackException as error:
        partial.unlink(missing_ok=True)
        raise BuildError(f"conda-pack could not pack the environment: {error}") from error
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise BuildError(f"writing the conda-pack archive failed: {error}") from error
    os.replace(partial, output)
    return output

"""Secrets generated once and kept in ``<data dir>/secrets/`` (directory 0700, files 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

#: File of the key that signs tokens and cookies (``AuthenticationBackend.secret`` overrides it).
JWT_SECRET = "jwt-secret"


def load_or_create_secret(directory: Path, name: str, *, nbytes: int = 32) -> str:
    """The secret stored as ``directory/name``, created (random, hex) on first use.

    Safe when several processes start at once: the file appears atomically and never changes
    once written, so all of them end up with the same value.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / name
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    value = secrets.token_hex(nbytes)
    partial = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, (value + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(partial, path)  # fails if another process won the race: use theirs
    except FileExistsError:
        value = _read(path)
    finally:
        partial.unlink(missing_ok=True)
    return value


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"the secret file {path} is empty; remove it to generate a new secret")
    return value

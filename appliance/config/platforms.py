"""conda platform names ("subdirs") and the one this host builds for."""

from __future__ import annotations

import platform
import sys

#: Subdirs a conda channel can have; platform options are checked against this list.
KNOWN_PLATFORMS = (
    "noarch",
    "linux-32",
    "linux-64",
    "linux-aarch64",
    "linux-armv6l",
    "linux-armv7l",
    "linux-ppc64le",
    "linux-s390x",
    "linux-riscv64",
    "osx-64",
    "osx-arm64",
    "win-32",
    "win-64",
    "win-arm64",
    "freebsd-64",
    "emscripten-wasm32",
    "wasi-wasm32",
    "zos-z",
)

_MACHINES = {
    "x86_64": "64",
    "amd64": "64",
    "aarch64": "aarch64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "armv7l": "armv7l",
    "armv6l": "armv6l",
    "i686": "32",
    "i386": "32",
}


def current_platform() -> str:
    """Return the conda subdir of this host, e.g. ``linux-64`` or ``osx-arm64``."""
    system = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    machine = _MACHINES.get(platform.machine().lower(), platform.machine().lower())
    if system == "linux" and machine == "arm64":
        machine = "aarch64"
    if system == "osx" and machine == "aarch64":
        machine = "arm64"
    return f"{system}-{machine}"

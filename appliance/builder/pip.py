"""``pip:`` dependencies, installed with the environment's own Python.

Kiln never uses its own interpreter for this: the packages must match the environment's Python.
``pip install --report`` tells which distributions were installed from where, which becomes the
``manager: pip`` part of the lockfile; a lockfile build installs exactly those URLs with their
hashes (``--require-hashes --no-deps``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from appliance.builder.buildlog import BuildLog
from appliance.builder.lock import PipLock
from appliance.common.errors import BuildError


def environment_python(prefix: Path) -> Path | None:
    """The environment's Python interpreter, or None when it has none."""
    for candidate in (prefix / "bin" / "python", prefix / "python.exe"):
        if candidate.exists():
            return candidate
    return None


async def _run(command: Sequence[str], *, env: Mapping[str, str], log: BuildLog) -> tuple[int, str]:
    """Run ``command``, streaming its output into the log; return (exit code, pip's last error)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
    )
    assert process.stdout is not None
    last_error = ""
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        log.write(line)
        if line.startswith("ERROR:"):
            last_error = line.removeprefix("ERROR:").strip()
    return await process.wait(), last_error


def pip_arguments(requirements: Sequence[str]) -> list[str]:
    """Command-line arguments for the spec's pip entries.

    Options are written as one entry with their value (``--index-url URL``), as in conda's
    environment.yaml; pip wants them as separate arguments. Requirements stay whole.
    """
    arguments: list[str] = []
    for entry in requirements:
        if entry.startswith("-"):
            arguments += shlex.split(entry.replace("=", " ", 1) if " " not in entry else entry)
        else:
            arguments.append(entry)
    return arguments


def _pip_environment(prefix: Path, extra: Mapping[str, str], home: str) -> dict[str, str]:
    env = {
        "PATH": f"{prefix / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PYTHONNOUSERSITE": "1",
    }
    env.update(extra)
    return env


async def install_pip_requirements(
    prefix: Path,
    requirements: Sequence[str],
    *,
    platform: str,
    log: BuildLog,
    environment: Mapping[str, str],
    locked: Sequence[PipLock] = (),
) -> list[PipLock]:
    """Install ``requirements`` (or exactly ``locked``) into ``prefix``; return what was installed.

    Raises :class:`BuildError` when the environment has no Python or pip fails.
    """
    if not requirements and not locked:
        return []
    python = environment_python(prefix)
    if python is None:
        raise BuildError(
            "the specification has pip dependencies but the environment has no Python: "
            "add 'python' (and 'pip') to the conda dependencies"
        )
    with tempfile.TemporaryDirectory(prefix="kiln-pip-") as scratch:
        report = Path(scratch) / "report.json"
        command = [
            str(python),
            "-m",
            "pip",
            "install",
            "--prefix",
            str(prefix),
            "--no-warn-script-location",
            "--report",
            str(report),
        ]
        if locked:
            requirements_file = Path(scratch) / "requirements.txt"
            lines = []
            for package in locked:
                if not package.sha256:
                    raise BuildError(f"lockfile: pip package {package.name} has no sha256 hash")
                lines.append(f"{package.name} @ {package.url} --hash=sha256:{package.sha256}")
            requirements_file.write_text("\n".join(lines) + "\n")
            command += ["--no-deps", "--require-hashes", "-r", str(requirements_file)]
        else:
            command += pip_arguments(requirements)
        log.write("$ " + " ".join(command))
        code, error = await _run(
            command, env=_pip_environment(prefix, environment, scratch), log=log
        )
        if code != 0:
            reason = f": {error}" if error else "; see the build log"
            raise BuildError(f"pip install failed (exit code {code}){reason}")
        data = json.loads(report.read_text())
    installed = []
    for item in data.get("install", []):
        info = item.get("download_info", {})
        hashes = info.get("archive_info", {}).get("hashes", {})
        sha256 = hashes.get("sha256")
        if sha256 is None and "hash" in info.get("archive_info", {}):
            algorithm, _, value = info["archive_info"]["hash"].partition("=")
            sha256 = value if algorithm == "sha256" else None
        installed.append(
            PipLock(
                name=item["metadata"]["name"],
                version=item["metadata"]["version"],
                url=info.get("url", ""),
                sha256=sha256,
                platform=platform,
            )
        )
    return installed

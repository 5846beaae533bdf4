"""``pip:`` dependencies are installed with the environment's own Python, locked and replayed.

No conda channel with a real CPython is reachable here, so the test channel's ``python`` package
is a thin launcher for the interpreter running the tests (which has pip). Everything Kiln does
(finding the environment's Python, running pip with ``--prefix`` and ``--report``, locking the
result, replaying it with ``--require-hashes``) runs for real, against a local PEP 503 index.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from appliance.builder.pipeline import Builder, BuildRequest
from appliance.builder.settings import BuildSettings
from appliance.channels.index import index_channel
from appliance.channels.package import Package, PackageFile, PackageFormat, write_package
from appliance.common.errors import BuildError
from appliance.schemas.specification import parse_specification
from appliance.storage import ArtifactKind, LocalArtifactStore


def _wheel(directory: Path, name: str, version: str) -> Path:
    """Write a minimal pure-Python wheel, as pip would build it."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@pytest.fixture(scope="module")
def pip_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEP 503 simple index on disk with one wheel, ``kilnpiptest``."""
    root = tmp_path_factory.mktemp("pypi") / "simple"
    project = root / "kilnpiptest"
    project.mkdir(parents=True)
    wheel = _wheel(project, "kilnpiptest", "1.2.3")
    (project / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    (root / "index.html").write_text('<a href="kilnpiptest/">kilnpiptest</a>\n')
    return root


@pytest.fixture(scope="module")
def python_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A channel whose ``python`` launches the interpreter running the tests."""
    channel = tmp_path_factory.mktemp("python-channel")
    launcher = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'
    package = Package(
        name="python",
        version="3.11.0",
        build="kiln_launcher_0",
        subdir="linux-64",
        files=(PackageFile.text("bin/python", launcher, executable=True),),
    )
    write_package(package, channel / "linux-64", PackageFormat.CONDA)
    (channel / "noarch").mkdir()
    index_channel(channel)
    return channel


def test_pip_packages_are_installed_locked_and_replayed(
    build_settings: BuildSettings,
    local_storage: LocalArtifactStore,
    builder: Builder,
    python_channel: Path,
    pip_index: Path,
) -> None:
    settings = replace(
        build_settings,
        default_channels=(str(python_channel),),
        allowed_channels=(str(python_channel),),
    )
    pip_builder = Builder(settings, local_storage, builder.gateway)
    spec = parse_specification(
        "name: withpip\ndependencies:\n  - python\n  - pip:\n"
        f"    - --index-url {pip_index.as_uri()}\n    - kilnpiptest==1.2.3\n"
    )
    result = asyncio.run(pip_builder.build(BuildRequest("default", spec, 1)))

    installed = list(result.prefix.glob("lib/python3*/site-packages/kilnpiptest/__init__.py"))
    assert installed, "kilnpiptest was not installed into the environment's prefix"
    pip_packages = [p for p in result.packages if p.manager == "pip"]
    assert [(p.name, p.version) for p in pip_packages] == [("kilnpiptest", "1.2.3")]

    lockfile = yaml.safe_load(
        local_storage.get(ArtifactKind.LOCKFILE.storage_key(result.build_key))
    )
    pip_locked = [p for p in lockfile["package"] if p["manager"] == "pip"]
    assert pip_locked[0]["url"].endswith("kilnpiptest-1.2.3-py3-none-any.whl")
    assert len(pip_locked[0]["hash"]["sha256"]) == 64
    pinned = yaml.safe_load(local_storage.get(ArtifactKind.YAML.storage_key(result.build_key)))
    assert {"pip": ["kilnpiptest==1.2.3"]} in pinned["dependencies"]

    # The lockfile replays: the same wheel, verified by hash, without resolving again.
    replay = parse_specification(yaml.safe_dump(lockfile), name="replayed")
    again = asyncio.run(pip_builder.build(BuildRequest("default", replay, 2)))
    assert list(again.prefix.glob("lib/python3*/site-packages/kilnpiptest/__init__.py"))

    # A tampered pip hash is refused.
    pip_locked[0]["hash"]["sha256"] = "0" * 64
    tampered = parse_specification(yaml.safe_dump(lockfile), name="tampered")
    with pytest.raises(BuildError, match="pip install failed"):
        asyncio.run(pip_builder.build(BuildRequest("default", tampered, 3)))

"""Splitting an environment into layers: one per package, small ones grouped under the limit,
a package's layer independent of the rest of the environment, and the environment's own layer
free of the build host's paths."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from appliance.oci.layers import (
    PackageFiles,
    carry_files,
    environment_layer,
    package_layer,
    plan_layers,
    read_packages,
    relocatable_record,
)

PREFIX = "/opt/conda/envs/demo"


def package(name: str, size: int, files: int = 1) -> PackageFiles:
    return PackageFiles(
        name=name,
        version="1.0",
        build="0",
        paths=tuple(f"share/{name}/{n}" for n in range(files)),
        size=size,
    )


def test_one_layer_per_package_in_name_order() -> None:
    packages = [package("zlib", 10), package("abc", 5), package("python", 1000)]
    plans = plan_layers(packages, max_layers=10)
    assert [plan.packages[0].name for plan in plans] == ["abc", "python", "zlib"]
    assert all(len(plan.packages) == 1 for plan in plans)
    assert plans[0].description == "conda package abc 1.0 0"


def test_packages_without_files_get_no_layer() -> None:
    meta = PackageFiles("meta", "1.0", "0", (), 0)
    assert [p.packages[0].name for p in plan_layers([meta, package("a", 1)], max_layers=5)] == ["a"]


@pytest.mark.parametrize("count", [99, 100, 101, 300, 1000])
def test_many_packages_stay_under_the_limit(count: int) -> None:
    packages = [package(f"pkg{n:04d}", size=n) for n in range(count)]
    plans = plan_layers(packages, max_layers=98)
    assert len(plans) <= 98
    assert sorted(p.name for plan in plans for p in plan.packages) == sorted(
        p.name for p in packages
    )
    if count > 98:
        grouped = [plan for plan in plans if len(plan.packages) > 1]
        assert len(grouped) == 1
        largest_grouped = max(p.size for p in grouped[0].packages)
        smallest_alone = min(plan.packages[0].size for plan in plans if len(plan.packages) == 1)
        assert largest_grouped <= smallest_alone  # the smallest are the ones grouped
        assert grouped[0].description.startswith(f"{count - 97} small conda packages: ")


def test_planning_is_stable() -> None:
    packages = [package(f"p{n}", size=n % 7) for n in range(150)]
    first = plan_layers(packages, max_layers=50)
    second = plan_layers(list(reversed(packages)), max_layers=50)
    assert first == second


def make_prefix(
    root: Path, packages: dict[str, dict[str, bytes]], generated: tuple[str, ...] = ()
) -> Path:
    """A staged prefix with conda-meta records, as rattler writes them; ``generated`` paths
    are recorded as made by the installer (python entry points)."""
    (root / "conda-meta").mkdir(parents=True)
    (root / "conda-meta" / "history").write_text("")
    for name, files in packages.items():
        for relative, data in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (1704067200, 1704067200))
        record = {
            "name": name,
            "version": "1.0",
            "build": "h0_0",
            "timestamp": 1704067200000,
            "files": sorted(files),
            "paths_data": {
                "paths_version": 1,
                "paths": [
                    {
                        "_path": p,
                        "size_in_bytes": len(d),
                        "path_type": ("unix_python_entry_point" if p in generated else "hardlink"),
                    }
                    for p, d in files.items()
                ],
            },
            "extracted_package_dir": f"/host/cache/{name}-1.0-h0_0",
            "link": {"source": f"/host/cache/{name}-1.0-h0_0", "type": 1},
            "channel": "file:///channel/",
        }
        (root / "conda-meta" / f"{name}-1.0-h0_0.json").write_text(json.dumps(record))
    return root


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_read_packages_from_conda_meta(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path / "env", {"tool": {"bin/tool": b"#!/bin/sh\n"}})
    (found,) = read_packages(prefix)
    assert found.name == "tool" and found.paths == ("bin/tool",) and found.size == 10
    assert found.generated == frozenset()


def test_a_package_layer_does_not_depend_on_the_other_packages(tmp_path: Path) -> None:
    tool = {"bin/tool": b"#!/bin/sh\necho hi\n", "share/tool/doc.txt": b"doc"}
    alone = make_prefix(tmp_path / "a", {"tool": tool})
    together = make_prefix(tmp_path / "b", {"tool": tool, "other": {"bin/other": b"x"}})
    layers = []
    for prefix in (alone, together):
        (plan, *_) = plan_layers(
            [p for p in read_packages(prefix) if p.name == "tool"], max_layers=5
        )
        layers.append(
            package_layer(prefix, PREFIX, plan).write(prefix.parent / f"{prefix.name}.tgz")
        )
    assert layers[0].digest == layers[1].digest


def test_a_package_layer_has_its_files_and_their_parents(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path / "env", {"tool": {"bin/tool": b"#!/bin/sh\n"}})
    (tmp_path / "env" / "bin" / "tool").chmod(0o700)
    (plan,) = plan_layers(read_packages(prefix), max_layers=5)
    blob = package_layer(prefix, PREFIX, plan).write(tmp_path / "layer.tgz")
    found = members(blob.path)
    assert list(found) == [
        "opt",
        "opt/conda",
        "opt/conda/envs",
        "opt/conda/envs/demo",
        "opt/conda/envs/demo/bin",
        "opt/conda/envs/demo/bin/tool",
    ]
    tool = found["opt/conda/envs/demo/bin/tool"]
    assert tool.mode == 0o755 and tool.mtime == 1704067200  # the package's time is kept
    assert found["opt"].mtime == 0


def test_files_the_installer_made_get_time_zero(tmp_path: Path) -> None:
    files = {"bin/tool": b"x", "lib/tool.py": b"print(1)\n"}
    prefix = make_prefix(tmp_path / "env", {"tool": files}, generated=("bin/tool",))
    os.utime(prefix / "bin" / "tool")  # written by the installer: now
    (plan,) = plan_layers(read_packages(prefix), max_layers=5)
    blob = package_layer(prefix, PREFIX, plan).write(tmp_path / "layer.tgz")
    assert members(blob.path)["opt/conda/envs/demo/bin/tool"].mtime == 0
    assert members(blob.path)["opt/conda/envs/demo/lib/tool.py"].mtime == 1704067200


def test_the_environment_layer_holds_what_no_package_owns(tmp_path: Path) -> None:
    prefix = make_prefix(tmp_path / "env", {"tool": {"bin/tool": b"x"}})
    (prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
    (prefix / "etc" / "conda" / "activate.d" / "kiln-variables.sh").write_text("export A=1\n")
    content = environment_layer(prefix, PREFIX, read_packages(prefix))
    blob = content.write(tmp_path / "env.tgz")
    found = members(blob.path)
    files = sorted(name for name, member in found.items() if member.isfile())
    assert files == [
        "opt/conda/envs/demo/conda-meta/history",
        "opt/conda/envs/demo/conda-meta/tool-1.0-h0_0.json",
        "opt/conda/envs/demo/etc/conda/activate.d/kiln-variables.sh",
    ]
    assert all(member.mtime == 0 for member in found.values())
    with tarfile.open(blob.path) as archive:
        handle = archive.extractfile("opt/conda/envs/demo/conda-meta/tool-1.0-h0_0.json")
        assert handle is not None
        record = json.loads(handle.read())
    assert record["extracted_package_dir"] == "" and record["link"]["source"] == ""
    assert record["channel"] == "file:///channel/"


def test_relocatable_records_are_stable() -> None:
    data = json.dumps({"b": 1, "a": 2, "package_tarball_full_path": "/x"}).encode()
    assert relocatable_record(data) == relocatable_record(data)
    assert json.loads(relocatable_record(data))["package_tarball_full_path"] == ""


def test_pip_files_are_carried_with_the_prefix_rewritten(tmp_path: Path) -> None:
    built = make_prefix(tmp_path / "built", {"python": {"bin/python": b"\x7fELF\0binary"}})
    script = built / "bin" / "pip-tool"
    script.write_text(f"#!{built}/bin/python\nimport tool\n")
    script.chmod(0o755)
    (built / "lib").mkdir()
    (built / "lib" / "blob.so").write_bytes(b"\0" + str(built).encode())
    (built / "lib" / "current").symlink_to(built / "lib" / "blob.so")
    staged = make_prefix(tmp_path / "staged", {"python": {"bin/python": b"\x7fELF\0binary"}})
    assert carry_files(built, staged, PREFIX) == 3
    assert (staged / "bin" / "pip-tool").read_text() == f"#!{PREFIX}/bin/python\nimport tool\n"
    assert os.access(staged / "bin" / "pip-tool", os.X_OK)
    assert (staged / "lib" / "blob.so").read_bytes() == b"\0" + str(built).encode()
    assert os.readlink(staged / "lib" / "current") == f"{PREFIX}/lib/blob.so"

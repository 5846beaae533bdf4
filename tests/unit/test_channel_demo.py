"""The demo channel is a real, reproducible conda channel that rattler solves and installs from.

rattler runs in pytest's own process here (its exit-time crash cannot hit a test), and the
``kiln channel`` CLI runs as ``python -m appliance``, which leaves through ``os._exit``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import conda_pack
import pytest
from rattler import GenericVirtualPackage, Version, install, solve
from rattler.exceptions import SolverError
from rattler.package import BuildString, PackageName, PathsJson
from rattler.platform import Subdir
from rattler.repo_data import Gateway, RepoDataRecord

from appliance.channels.demo import (
    BIG_FILE_COUNT,
    CATALOGUE,
    DEMO_PLACEHOLDER,
    DEMO_SUBDIRS,
    DemoPackage,
    write_demo_channel,
)
from appliance.channels.package import LONG_PLACEHOLDER, PackageFormat
from appliance.common.errors import ChannelError

REPO_ROOT = Path(__file__).resolve().parents[2]
LINUX_HOST = ("__unix", "0"), ("__linux", "6.1"), ("__glibc", "2.36")


@pytest.fixture(scope="module")
def demo_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_channel(tmp_path_factory.mktemp("demo") / "channel")


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def repodata_records(channel: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for subdir in DEMO_SUBDIRS:
        repodata = json.loads((channel / subdir / "repodata.json").read_text())
        for key in ("packages", "packages.conda"):
            records.update(repodata.get(key, {}))
    return records


def catalogue_entry(name: str, version: str | None = None) -> DemoPackage:
    return next(
        entry
        for entry in CATALOGUE
        if entry.name == name and (version is None or entry.version == version)
    )


def virtual_packages(*extra: tuple[str, str]) -> list[GenericVirtualPackage]:
    return [
        GenericVirtualPackage(PackageName(name), Version(version), BuildString("0"))
        for name, version in (*LINUX_HOST, *extra)
    ]


def solve_demo(
    channel: Path, specs: list[str], cache: Path, *extra: tuple[str, str]
) -> list[RepoDataRecord]:
    return asyncio.run(
        solve(
            sources=[channel.as_uri()],
            specs=specs,
            gateway=Gateway(cache_dir=cache),
            platforms=[Subdir("linux-64"), Subdir("noarch")],
            virtual_packages=virtual_packages(*extra),
        )
    )


def test_writing_twice_gives_identical_bytes(demo_channel: Path, tmp_path: Path) -> None:
    again = write_demo_channel(tmp_path / "again")
    assert file_digests(again) == file_digests(demo_channel)
    assert sorted(path.name for path in again.iterdir()) == sorted(DEMO_SUBDIRS)


def test_rewriting_over_an_earlier_demo_channel_is_allowed(tmp_path: Path) -> None:
    first = file_digests(write_demo_channel(tmp_path / "channel"))
    assert file_digests(write_demo_channel(tmp_path / "channel")) == first


def test_refuses_a_directory_with_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "linux-64").mkdir()
    (tmp_path / "linux-64" / "numpy-1.26.0-0.conda").write_bytes(b"not ours")
    with pytest.raises(ChannelError, match=r"not part of the demo channel \(linux-64/numpy"):
        write_demo_channel(tmp_path)


def test_repodata_lists_every_package_with_its_dependencies(demo_channel: Path) -> None:
    records = repodata_records(demo_channel)
    assert set(records) == {entry.filename for entry in CATALOGUE}
    for entry in CATALOGUE:
        record = records[entry.filename]
        assert (record["name"], record["version"]) == (entry.name, entry.version)
        assert record["subdir"] == entry.subdir
        assert record["depends"] == list(entry.package.depends)
        assert record.get("constrains", []) == list(entry.package.constrains)
        assert "indexed_timestamp" not in record
    assert records_by_name(records)["kiln-demo-tool"]["1.0.0"]["depends"] == [
        "kiln-demo-lib >=1.0,<3",
        "kiln-demo-data >=1.0",
    ]


def records_by_name(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records.values():
        by_name.setdefault(record["name"], {})[record["version"]] = record
    return by_name


def test_catalogue_covers_what_real_channels_have(demo_channel: Path) -> None:
    assert len(CATALOGUE) >= 9
    assert all(entry.name.startswith("kiln-demo-") for entry in CATALOGUE)
    assert all(entry.purpose for entry in CATALOGUE)
    formats = {(entry.subdir, entry.format) for entry in CATALOGUE}
    assert formats == {(s, f) for s in DEMO_SUBDIRS for f in PackageFormat}
    versions = [entry.version for entry in CATALOGUE if entry.name == "kiln-demo-lib"]
    assert versions == ["1.0.0", "2.0.0"]
    assert len(DEMO_PLACEHOLDER) == 255
    assert DEMO_PLACEHOLDER.startswith("/opt/anaconda1anaconda2anaconda3_placehold_placehold")


def test_packages_declare_symlinks_and_both_placeholder_kinds(demo_channel: Path) -> None:
    lib = catalogue_entry("kiln-demo-lib", "1.0.0")
    paths = {
        str(entry.relative_path): entry
        for entry in PathsJson.from_package_archive(demo_channel / lib.relative_path).paths
    }
    assert paths["lib/libkilndemo.so"].path_type.softlink
    assert paths["lib/libkilndemo.so.1"].path_type.softlink
    library = paths["lib/libkilndemo.so.1.0.0"]
    assert library.path_type.hardlink
    assert library.prefix_placeholder is not None
    assert library.prefix_placeholder.file_mode.binary
    assert library.prefix_placeholder.placeholder == LONG_PLACEHOLDER
    pkgconfig = paths["lib/pkgconfig/kilndemo.pc"].prefix_placeholder
    assert pkgconfig is not None and pkgconfig.file_mode.text


def test_has_prefix_is_in_conda_build_format(demo_channel: Path) -> None:
    lib = catalogue_entry("kiln-demo-lib", "1.0.0")
    with tarfile.open(demo_channel / lib.relative_path, "r:bz2") as archive:
        names = archive.getnames()
        has_prefix = archive.extractfile("info/has_prefix").read().decode()  # type: ignore[union-attr]
    assert names[: len([n for n in names if n.startswith("info/")])] == sorted(
        n for n in names if n.startswith("info/")
    ), "info/ comes first, sorted"
    assert has_prefix.splitlines() == [
        f"{LONG_PLACEHOLDER} binary lib/libkilndemo.so.1.0.0",
        f"{LONG_PLACEHOLDER} text lib/pkgconfig/kilndemo.pc",
    ]


def test_big_package_has_thousands_of_files(demo_channel: Path) -> None:
    big = catalogue_entry("kiln-demo-big")
    assert big.format is PackageFormat.CONDA
    assert BIG_FILE_COUNT >= 2000
    paths = PathsJson.from_package_archive(demo_channel / big.relative_path).paths
    assert len(paths) == BIG_FILE_COUNT


def test_tool_solves_and_installs_into_a_long_prefix(demo_channel: Path, tmp_path: Path) -> None:
    records = solve_demo(demo_channel, ["kiln-demo-tool"], tmp_path / "cache")
    assert sorted(f"{r.name.normalized}={r.version}" for r in records) == [
        "kiln-demo-data=1.0.0",
        "kiln-demo-lib=2.0.0",
        "kiln-demo-tool=1.0.0",
    ]
    prefix = tmp_path / ("long-" * 20) / "env"
    asyncio.run(install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))

    tool = subprocess.run(
        [prefix / "bin" / "kiln-demo-tool"], capture_output=True, text=True, check=True
    )
    assert tool.stdout == f"{prefix}\n"
    assert os.readlink(prefix / "lib" / "libkilndemo.so") == "libkilndemo.so.2"
    assert os.readlink(prefix / "lib" / "libkilndemo.so.2") == "libkilndemo.so.2.0.0"
    library = (prefix / "lib" / "libkilndemo.so.2.0.0").read_bytes()
    built = catalogue_entry("kiln-demo-lib", "2.0.0").package.files
    assert len(library) == len(next(f for f in built if f.path.endswith(".so.2.0.0")).content)
    assert DEMO_PLACEHOLDER.encode() not in library
    padding = bytes(len(DEMO_PLACEHOLDER) - len(str(prefix)))
    assert f"{prefix}/lib".encode() + padding + b"\x00" in library
    assert f"{prefix}/share/kiln-demo".encode() + padding + b"\x00" in library
    assert (prefix / "share" / "kiln-demo" / "read me.txt").is_file()


def test_conda_pack_and_unpack_relocate_the_tool(demo_channel: Path, tmp_path: Path) -> None:
    records = solve_demo(demo_channel, ["kiln-demo-tool"], tmp_path / "cache")
    prefix = tmp_path / "env"
    asyncio.run(install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    archive = tmp_path / "env.tar"
    conda_pack.pack(prefix=str(prefix), output=str(archive), format="tar", verbose=False)
    moved = tmp_path / "moved" / "elsewhere"
    moved.mkdir(parents=True)
    with tarfile.open(archive) as packed:
        packed.extractall(moved, filter="fully_trusted")
    subprocess.run([sys.executable, moved / "bin" / "conda-unpack"], check=True)
    tool = subprocess.run([moved / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
    assert tool.stdout == f"{moved}\n"


def test_gpu_package_needs_the_cuda_virtual_package(demo_channel: Path, tmp_path: Path) -> None:
    with pytest.raises(SolverError, match="__cuda"):
        solve_demo(demo_channel, ["kiln-demo-gpu"], tmp_path / "cache")
    records = solve_demo(demo_channel, ["kiln-demo-gpu"], tmp_path / "cache", ("__cuda", "12.2"))
    assert {r.name.normalized for r in records} == {"kiln-demo-gpu", "kiln-demo-lib"}


def test_legacy_and_the_new_library_cannot_be_combined(demo_channel: Path, tmp_path: Path) -> None:
    with pytest.raises(SolverError, match="kiln-demo-l"):
        solve_demo(demo_channel, ["kiln-demo-legacy", "kiln-demo-lib >=2"], tmp_path / "cache")
    records = solve_demo(demo_channel, ["kiln-demo-legacy", "kiln-demo-tool"], tmp_path / "cache")
    versions = {r.name.normalized: str(r.version) for r in records}
    assert versions["kiln-demo-lib"] == "1.0.0"


def test_plugin_constrains_and_metapackage_installs(demo_channel: Path, tmp_path: Path) -> None:
    records = solve_demo(
        demo_channel, ["kiln-demo-plugin", "kiln-demo-meta", "kiln-demo-big"], tmp_path / "cache"
    )
    versions = {r.name.normalized: str(r.version) for r in records}
    assert versions["kiln-demo-lib"] == "2.0.0"
    prefix = tmp_path / "env"
    asyncio.run(install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    big = list((prefix / "share" / "kiln-demo-big").rglob("*.txt"))
    assert len(big) == BIG_FILE_COUNT
    with pytest.raises(SolverError):
        solve_demo(demo_channel, ["kiln-demo-plugin", "kiln-demo-legacy"], tmp_path / "cache")


def test_cli_writes_the_demo_channel(tmp_path: Path) -> None:
    target = tmp_path / "cli-demo"
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "channel", "demo", str(target)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert str(target) in result.stdout
    assert f"{len(CATALOGUE)} packages" in result.stdout
    assert f"kiln build --channel {target.as_uri()}" in result.stdout
    assert (target / "linux-64" / "repodata.json").is_file()

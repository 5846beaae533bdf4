"""``kiln channel index`` turns a directory of packages into a channel, or says what is wrong."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rattler import solve
from rattler.platform import Subdir
from rattler.repo_data import Gateway

from appliance.channels.demo import CATALOGUE, DEMO_SUBDIRS, write_demo_channel
from appliance.channels.index import index_channel, read_channel_summary
from appliance.channels.package import NoArch, Package, PackageFile, PackageFormat, write_package
from appliance.common.errors import ChannelError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_channel(tmp_path_factory.mktemp("demo") / "channel")


@pytest.fixture
def unindexed(demo_channel: Path, tmp_path: Path) -> Path:
    """A copy of the demo channel without any repodata.json."""
    copy = tmp_path / "channel"
    shutil.copytree(demo_channel, copy)
    for repodata in copy.glob("*/repodata.json"):
        repodata.unlink()
    return copy


def records(channel: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for repodata in channel.glob("*/repodata.json"):
        document = json.loads(repodata.read_text())
        for key in ("packages", "packages.conda"):
            for filename, record in document.get(key, {}).items():
                record.pop("indexed_timestamp", None)
                found[f"{repodata.parent.name}/{filename}"] = record
    return found


def test_index_rebuilds_a_usable_channel(demo_channel: Path, unindexed: Path) -> None:
    summary = index_channel(unindexed)
    assert summary.package_count == len(CATALOGUE)
    assert summary.subdirs == ("linux-64", "noarch")
    assert summary.url == unindexed.resolve().as_uri()
    assert records(unindexed) == records(demo_channel)
    assert sorted(path.name for path in unindexed.iterdir()) == sorted(DEMO_SUBDIRS)
    solved = asyncio.run(
        solve(
            sources=[str(unindexed)],
            specs=["kiln-demo-tool"],
            gateway=Gateway(cache_dir=unindexed.parent / "cache"),
            platforms=[Subdir("linux-64"), Subdir("noarch")],
            virtual_packages=[],
        )
    )
    assert "kiln-demo-tool" in {record.name.normalized for record in solved}


def test_index_creates_noarch_when_missing(tmp_path: Path) -> None:
    package = Package("kiln-demo-only", "1.0", "0", subdir="linux-64")
    write_package(package, tmp_path / "linux-64", PackageFormat.CONDA)
    summary = index_channel(tmp_path)
    assert summary.packages == {"linux-64": 1, "noarch": 0}
    assert (tmp_path / "noarch" / "repodata.json").is_file()


def test_index_is_incremental_and_force_rereads(unindexed: Path) -> None:
    index_channel(unindexed)
    extra = Package(
        "kiln-demo-extra",
        "1.0",
        "0",
        noarch=NoArch.GENERIC,
        files=(PackageFile.text("share/extra.txt", "x\n"),),
    )
    write_package(extra, unindexed / "noarch", PackageFormat.TAR_BZ2)
    assert index_channel(unindexed).package_count == len(CATALOGUE) + 1
    # A package already indexed is not opened again unless --force is given.
    indexed = next(unindexed.glob("noarch/kiln-demo-data-*.tar.bz2"))
    indexed.write_bytes(b"replaced by garbage")
    assert index_channel(unindexed).package_count == len(CATALOGUE) + 1
    with pytest.raises(ChannelError, match=rf"noarch/{indexed.name} \(corrupt"):
        index_channel(unindexed, force=True)


def test_stale_compressed_repodata_is_rewritten(unindexed: Path) -> None:
    (unindexed / "noarch" / "repodata.json.zst").write_bytes(b"stale")
    index_channel(unindexed)
    assert (unindexed / "noarch" / "repodata.json.zst").read_bytes() != b"stale"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match="does not exist"):
        index_channel(tmp_path / "nowhere")


def test_a_file_is_not_a_channel(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ChannelError, match="is not a directory"):
        index_channel(tmp_path / "file")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "noarch").mkdir()
    with pytest.raises(ChannelError, match=r"contains no conda packages: expected \*\.conda"):
        index_channel(tmp_path)


@pytest.mark.parametrize("suffix", [".conda", ".tar.bz2"])
def test_corrupt_package_is_named(unindexed: Path, suffix: str) -> None:
    (unindexed / "linux-64" / f"kiln-broken-1.0-0{suffix}").write_bytes(b"\x00garbage")
    with pytest.raises(ChannelError) as raised:
        index_channel(unindexed)
    assert (
        f"linux-64/kiln-broken-1.0-0{suffix} (corrupt or truncated archive" in raised.value.message
    )


def test_truncated_package_is_named(unindexed: Path) -> None:
    original = next(unindexed.glob("linux-64/kiln-demo-lib-2.0.0-*.conda"))
    original.write_bytes(original.read_bytes()[:500])
    with pytest.raises(
        ChannelError, match=rf"1 package file\(s\) .*/{re.escape(original.name)} \(corrupt"
    ):
        index_channel(unindexed)


def test_package_in_the_wrong_subdir_is_named(unindexed: Path) -> None:
    lib = next(unindexed.glob("linux-64/kiln-demo-lib-1.0.0-*.tar.bz2"))
    shutil.move(lib, unindexed / "noarch" / lib.name)
    with pytest.raises(ChannelError, match="built for subdir linux-64, move it to linux-64/"):
        index_channel(unindexed)


def test_packages_at_the_top_level_are_refused(unindexed: Path) -> None:
    lib = next(unindexed.glob("linux-64/kiln-demo-lib-1.0.0-*.tar.bz2"))
    shutil.copy(lib, unindexed / lib.name)
    with pytest.raises(ChannelError, match="package files at its top level"):
        index_channel(unindexed)


def test_packages_in_an_unknown_subdir_are_refused(unindexed: Path) -> None:
    (unindexed / "linux64").mkdir()
    shutil.copy(next(unindexed.glob("linux-64/*.conda")), unindexed / "linux64")
    with pytest.raises(ChannelError, match="'linux64' is not a conda platform subdir"):
        index_channel(unindexed)


def test_summary_of_an_unindexed_directory(tmp_path: Path) -> None:
    with pytest.raises(ChannelError, match=r"no repodata\.json: run kiln channel index"):
        read_channel_summary(tmp_path)


def test_cli_indexes_and_reports_errors(unindexed: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "appliance", "channel", "index"]
    ok = subprocess.run(
        [*command, str(unindexed)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert f"{len(CATALOGUE)} packages (linux-64 " in ok.stdout
    assert unindexed.as_uri() in ok.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = subprocess.run(
        [*command, str(empty)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"kiln: error: {empty} contains no conda packages")

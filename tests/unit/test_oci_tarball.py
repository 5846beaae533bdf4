"""Layer archives are deterministic: fixed tar metadata, fixed gzip header, same bytes for the
same entries, readable by tarfile, GNU tar and gzip."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from appliance.oci.tarball import LayerWriter, gzip_file


def write_sample(path: Path, source: Path) -> None:
    with LayerWriter(path) as writer:
        writer.add_directory("opt")
        writer.add_directory("opt/env")
        writer.add_bytes("opt/env/data.txt", b"hello\n", mode=0o600, mtime=1704067200)
        writer.add_file("opt/env/tool", source, mode=0o700, size=source.stat().st_size)
        writer.add_hardlink("opt/env/tool-again", "opt/env/tool", mode=0o700)
        writer.add_symlink("opt/env/link", "data.txt")
        writer.add_bytes("opt/env/" + "d" * 120 + "/" + "f" * 150, b"deep", mode=0o644)
        writer.add_symlink("opt/env/far", "/" + "t" * 150)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "tool"
    path.write_bytes(b"#!/bin/sh\necho tool\n" * 100)
    return path


def test_the_same_entries_give_the_same_bytes(tmp_path: Path, source: Path) -> None:
    write_sample(tmp_path / "one.tar.gz", source)
    os.utime(source, (0, 1_900_000_000))  # the source's own time does not leak in
    write_sample(tmp_path / "two.tar.gz", source)
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()


def test_digests_are_of_the_gzip_and_of_the_tar(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    with LayerWriter(path) as writer:
        writer.add_bytes("a", b"a")
    blob = writer.finish()
    data = path.read_bytes()
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    tar = gzip.decompress(data)
    assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert blob.tar_size == len(tar)
    assert len(tar) % 512 == 0 and tar.endswith(b"\0" * 1024)


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    path = tmp_path / "named-after-nothing.tar.gz"
    with LayerWriter(path) as writer:
        writer.add_bytes("a", b"a")
    header = path.read_bytes()[:10]
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no FNAME flag, mtime 0


def test_metadata_is_normalised(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    write_sample(path, source)
    with tarfile.open(path) as archive:
        members = {member.name: member for member in archive.getmembers()}
    assert all(
        m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members.values()
    )
    assert members["opt"].isdir() and members["opt"].mode == 0o755
    assert members["opt/env/data.txt"].mode == 0o644
    assert members["opt/env/data.txt"].mtime == 1704067200
    assert members["opt/env/tool"].mode == 0o755 and members["opt/env/tool"].mtime == 0
    assert members["opt/env/tool-again"].islnk()
    assert members["opt/env/tool-again"].linkname == "opt/env/tool"
    assert members["opt/env/link"].issym() and members["opt/env/link"].linkname == "data.txt"
    long_name = "opt/env/" + "d" * 120 + "/" + "f" * 150
    assert members[long_name].size == 4
    assert members["opt/env/far"].linkname == "/" + "t" * 150


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs tar")
def test_gnu_tar_extracts_what_tarfile_reads(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    write_sample(path, source)
    target = tmp_path / "out"
    target.mkdir()
    subprocess.run(["tar", "-xzf", str(path), "-C", str(target)], check=True)
    tool = target / "opt" / "env" / "tool"
    assert tool.read_bytes() == source.read_bytes()
    assert os.stat(tool).st_ino == os.stat(target / "opt/env/tool-again").st_ino
    assert os.readlink(target / "opt/env/link") == "data.txt"
    assert (target / "opt/env" / ("d" * 120) / ("f" * 150)).read_bytes() == b"deep"


def test_large_files_stream_through(tmp_path: Path) -> None:
    big = tmp_path / "big"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    big.write_bytes(payload)
    path = tmp_path / "layer.tar.gz"
    with LayerWriter(path) as writer:
        writer.add_file("big", big, mode=0o644, size=len(payload))
    with tarfile.open(path) as archive:
        handle = archive.extractfile("big")
        assert handle is not None and handle.read() == payload


def test_a_file_that_changes_size_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "file"
    source.write_bytes(b"12345")
    with pytest.raises(OSError, match="changed size"), LayerWriter(tmp_path / "l.tgz") as writer:
        writer.add_file("file", source, mode=0o644, size=3)


def test_recompressing_a_tar_keeps_its_diff_id(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("etc/os-release")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"tiny\n"))
    tar = tmp_path / "layer.tar"
    tar.write_bytes(buffer.getvalue())
    blob = gzip_file(tar, tmp_path / "layer.tar.gz")
    assert blob.diff_id == "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()
    assert zlib.decompress((tmp_path / "layer.tar.gz").read_bytes(), 31) == buffer.getvalue()
    again = gzip_file(tar, tmp_path / "again.tar.gz")
    assert again.digest == blob.digest

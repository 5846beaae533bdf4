"""``kiln build`` with artifacts in a real S3 server (SeaweedFS), configured as operators do."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from appliance.storage import S3ArtifactStore
from tests.e2e.kiln import kiln
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.s3


def s3_config(path: Path, server: S3Server, *, secret: str | None = None) -> Path:
    path.write_text(
        "c.CondaStore.storage_class = 'S3Storage'\n"
        f"c.S3Storage.internal_endpoint = {server.endpoint!r}\n"
        f"c.S3Storage.access_key = {server.access_key!r}\n"
        f"c.S3Storage.secret_key = {(secret or server.secret_key)!r}\n"
        f"c.S3Storage.bucket_name = {server.bucket!r}\n"
        f"c.S3Storage.region = {server.region!r}\n"
        "c.S3Storage.secure = False\n"
    )
    return path


def kiln_build_with_s3(
    tmp_path: Path, server: S3Server, channel: Path, *extra: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``kiln build`` of a demo spec with a config file pointing at ``server``."""
    spec = tmp_path / "environment.yml"
    spec.write_text("name: demo\ndependencies:\n  - kiln-demo-tool\n")
    config = s3_config(tmp_path / "kiln_config.py", server, secret=secret)
    return kiln(
        "build", spec, "--config", config, "--data-dir", tmp_path / "data",
        "--channel", channel, *extra,
    )  # fmt: skip


def test_build_stores_every_artifact_in_s3(
    tmp_path: Path, s3_bucket: S3Server, demo_channel: Path
) -> None:
    result = kiln_build_with_s3(tmp_path, s3_bucket, demo_channel, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    key = summary["build_key"]
    client = s3_bucket.client()
    names = {o.object_name for o in client.list_objects(s3_bucket.bucket, recursive=True)}
    assert names >= {
        f"logs/{key}.log",
        f"lockfile/{key}.yml",
        f"yaml/{key}.yml",
        f"archive/{key}.tar.gz",
    }
    assert summary["artifacts"]["LOCKFILE"] == f"s3://{s3_bucket.bucket}/lockfile/{key}.yml"
    log = client.get_object(s3_bucket.bucket, f"logs/{key}.log").read().decode()
    assert "--- install ---" in log and "completed" in log

    # A user fetches the archive through a presigned URL and it is the environment.
    store = S3ArtifactStore(
        internal_endpoint=s3_bucket.endpoint,
        access_key=s3_bucket.access_key,
        secret_key=s3_bucket.secret_key,
        bucket_name=s3_bucket.bucket,
        region=s3_bucket.region,
        secure=False,
    )
    url = store.url(f"archive/{key}.tar.gz", expires=timedelta(minutes=5))
    assert url is not None
    with urllib.request.urlopen(url) as response:
        content = response.read()
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        assert "bin/kiln-demo-tool" in archive.getnames()

    link = Path(summary["environment"])
    tool = subprocess.run([link / "bin" / "kiln-demo-tool"], capture_output=True, text=True)
    assert tool.stdout.strip() == str(link.resolve())


def test_wrong_s3_credentials_stop_the_build_before_it_starts(
    tmp_path: Path, s3_bucket: S3Server, demo_channel: Path
) -> None:
    result = kiln_build_with_s3(tmp_path, s3_bucket, demo_channel, secret="not-the-secret")
    assert result.returncode == 1
    assert "rejected the credentials" in result.stderr
    assert "not-the-secret" not in result.stderr
    assert not (tmp_path / "data" / "store").exists()

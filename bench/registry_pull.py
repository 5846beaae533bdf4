"""Registry pull benchmark: ``skopeo copy`` of a 200 MB image from Kiln's registry against the
same image pulled from Debian's ``docker-registry`` (distribution 2.8.2), the reference
registry.

Part of ``make bench`` (``bench/run.py registry``); alone, with options::

    .venv/bin/python bench/registry_pull.py [--megabytes 210] [--repeats 5] [--workers 1]
                                            [--keep]

Everything runs on 127.0.0.1 in a scratch directory that is removed at the end (``--keep``
keeps it and prints where):

1. Kiln's managed PostgreSQL in a fresh data dir, migrated by ``kiln migrate``'s code; an admin
   token from ``kiln token create``.
2. A synthetic image of about ``--megabytes`` MB: :data:`LAYER_SIZES`-shaped layers, each a
   tar of one file of random bytes, gzipped (random bytes do not compress, so the layers are as
   large as their content), an OCI config and an OCI manifest. Its blobs are written into
   Kiln's storage (``LocalStorage`` in the data dir) under the image contract's keys, and a
   COMPLETED build of ``bench/image`` with an OCI_IMAGE artifact is recorded with plain SQL;
   the same blobs also form an OCI image layout in the scratch directory.
3. ``kiln web --workers N`` (granian, the registry on at ``/v2/``) and ``docker-registry serve``
   with a temporary configuration (filesystem storage in the scratch directory, no auth, access
   log off), each on a free port. The layout is pushed to distribution with ``skopeo copy
   --preserve-digests``; both registries then serve the same manifest digest, which is checked.
4. One untimed pull from each (page cache warm on both sides), then ``--repeats`` timed pulls
   from each, alternating which goes first: ``skopeo copy --src-tls-verify=false
   docker://127.0.0.1:PORT/bench/image:latest oci:<fresh dir>:bench`` (with ``--src-creds
   bench:<token>`` for Kiln, which requires a login; distribution has no auth). skopeo fetches
   up to six layers at a time, verifies every digest and writes them to disk, the same work for
   both.

Printed: each registry's pull times (median, min, max), throughput, and the ratio of medians;
budget (issue 5): Kiln at most :data:`RATIO_BUDGET` times distribution's time. Budgets are
reported, never enforced: the exit status is 1 only when the benchmark could not measure.
Needs Debian's ``skopeo`` and ``docker-registry`` (``.ci/system-deps``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from measure import BenchmarkError, Budget, Result, Unit, alternate, show, timed
from processes import free_port, http_status, reachable, run_checked, stop, sweep, tail

from appliance.config import load_config
from appliance.db.migrate import migrate
from appliance.storage.factory import open_storage
from appliance.supervisor.postgres import ManagedPostgres

#: Image size in MB (at least 200, as issue 5 asks), and how it is split into layers: shares
#: of the total, largest first, like an environment with a few big packages and many small.
MEGABYTES = 210
LAYER_SIZES = (0.30, 0.20, 0.15, 0.10, 0.08, 0.06, 0.04, 0.03, 0.02, 0.01, 0.005, 0.005)
REPEATS = 5
WORKERS = 1
#: Issue 5's budget: Kiln's pull time at most this multiple of distribution's.
RATIO_BUDGET = 1.2
#: Bounds on starting a server and on one pull.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PULL_TIMEOUT = 600.0

REPOSITORY = "bench/image"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BLOB_PREFIX = "oci/blobs/sha256/"  # the image contract (appliance.oci.layout.BLOB_PREFIX)


# --------------------------------------------------------------------------------------------
# The image


@dataclass(frozen=True)
class Image:
    manifest: str  #: digest
    size: int  #: bytes of all blobs
    blobs: tuple[tuple[str, Path], ...]  #: digest, file


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def _layer(index: int, size: int, directory: Path) -> tuple[Path, str]:
    """A gzipped tar of one random file of ``size`` bytes; (file, diff_id)."""
    raw = directory / f"layer-{index}.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"opt/bench/layer-{index}.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    diff_id = _digest(raw)
    compressed = directory / f"layer-{index}.tar.gz"
    with raw.open("rb") as source, gzip.GzipFile(compressed, "wb", compresslevel=1, mtime=0) as gz:
        shutil.copyfileobj(source, gz, 1 << 20)
    raw.unlink()
    return compressed, diff_id


def make_image(megabytes: int, directory: Path) -> Image:
    """Write the image's blobs into ``directory``."""
    directory.mkdir(parents=True)
    total = megabytes * 1_000_000
    layers: list[tuple[str, Path, str]] = []
    for index, share in enumerate(LAYER_SIZES):
        path, diff_id = _layer(index, max(int(total * share), 1), directory)
        layers.append((_digest(path), path, diff_id))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, _, diff_id in layers]},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    config_path = directory / "config.json"
    config_path.write_bytes(config)
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": digest, "size": path.stat().st_size}
                for digest, path, _ in layers
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest_path = directory / "manifest.json"
    manifest_path.write_bytes(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    blobs = [
        *((digest, path) for digest, path, _ in layers),
        (config_digest, config_path),
        (manifest_digest, manifest_path),
    ]
    return Image(manifest_digest, sum(p.stat().st_size for _, p in blobs), tuple(blobs))


def write_layout(image: Image, layout: Path, tag: str) -> None:
    """``image`` as an OCI image layout (blobs hard-linked), tagged ``tag``."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for digest, path in image.blobs:
        os.link(path, blobs / digest.removeprefix("sha256:"))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifest = dict(image.blobs)[image.manifest]
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest,
                "size": manifest.stat().st_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


# --------------------------------------------------------------------------------------------
# Kiln


RECORD_SQL = """
WITH ns AS (INSERT INTO namespace (name) VALUES ('bench') RETURNING id),
env AS (INSERT INTO environment (namespace_id, name) SELECT id, 'image' FROM ns RETURNING id),
spec AS (
    INSERT INTO specification (name, spec, sha256)
    VALUES ('image', '{"name": "image"}'::jsonb, repeat('0', 64)) RETURNING id
),
b AS (
    INSERT INTO build (environment_id, specification_id, status, build_key, ended_on)
    SELECT env.id, spec.id, 'COMPLETED', 'bench-image-1', now() FROM env, spec RETURNING id
)
INSERT INTO build_artifact (build_id, artifact_type, key) SELECT id, 'OCI_IMAGE', %s FROM b
"""
CURRENT_SQL = """
UPDATE environment SET current_build_id = (SELECT max(id) FROM build) WHERE name = 'image'
"""


def record_in_kiln(data_dir: Path, conninfo: str, image: Image) -> None:
    """The image's blobs into Kiln's storage, and a COMPLETED build of ``bench/image`` with it."""
    storage = open_storage(load_config(None, data_dir, environ={}).storage)
    for digest, path in image.blobs:
        storage.put_file(BLOB_PREFIX + digest.removeprefix("sha256:"), path)
    with psycopg.connect(conninfo) as connection:
        connection.execute(RECORD_SQL.encode(), (BLOB_PREFIX + image.manifest[7:],))
        connection.execute(CURRENT_SQL.encode())
        connection.commit()


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("KILN_")}


def start_kiln(data_dir: Path, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (data_dir / "kiln_config.py").write_text(
        "# Written by bench/registry_pull.py\n"
        "c.CondaStoreServer.address = '127.0.0.1'\n"
        f"c.CondaStoreServer.port = {port}\n"
    )
    command = [
        sys.executable, "-m", "appliance", "web", "--data-dir", str(data_dir),
        "--workers", str(workers), "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("ab") as output:
        web = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_environment(),
            cwd=data_dir.parent, start_new_session=True,
        )  # fmt: skip
    _wait_for(web, f"http://127.0.0.1:{port}/healthz", (200,), log, "kiln web")
    return web, port


# --------------------------------------------------------------------------------------------
# distribution


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
  secret: kiln-bench
"""


def start_distribution(scratch: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise BenchmarkError("docker-registry is not installed (Debian package docker-registry)")
    port = free_port()
    config = scratch / "distribution.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=scratch / "distribution", port=port))
    with log.open("ab") as output:
        registry = subprocess.Popen(
            [binary, "serve", str(config)], stdout=output, stderr=subprocess.STDOUT,
            cwd=scratch, start_new_session=True,
        )  # fmt: skip
    _wait_for(registry, f"http://127.0.0.1:{port}/v2/", (200,), log, "docker-registry")
    return registry, port


def _wait_for(
    process: subprocess.Popen[bytes], url: str, statuses: Sequence[int], log: Path, name: str
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while http_status(url) not in statuses:
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchmarkError(f"{name} did not come up:\n{tail(log)}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Pulls


def skopeo(*arguments: str) -> list[str]:
    return ["skopeo", "--registries-conf", "/dev/null", *arguments]


def manifest_digest(port: int, creds: Sequence[str]) -> str:
    inspected = run_checked(
        skopeo("inspect", "--tls-verify=false", *creds,
               f"docker://127.0.0.1:{port}/{REPOSITORY}:latest"),
        timeout=PULL_TIMEOUT,
    )  # fmt: skip
    return str(json.loads(inspected.stdout)["Digest"])


def pull(port: int, creds: Sequence[str], destination: Path) -> float:
    """Seconds ``skopeo copy`` of the image into a fresh OCI layout took."""
    shutil.rmtree(destination, ignore_errors=True)
    command = skopeo(
        "copy", "--src-tls-verify=false", *creds,
        f"docker://127.0.0.1:{port}/{REPOSITORY}:latest", f"oci:{destination}:bench",
    )  # fmt: skip
    seconds = timed(lambda: run_checked(command, timeout=PULL_TIMEOUT))
    shutil.rmtree(destination, ignore_errors=True)
    return seconds


# --------------------------------------------------------------------------------------------
# Entry points


def measure(scratch: Path, *, megabytes: int, repeats: int, workers: int) -> Result:
    reachable(scratch)
    data_dir = scratch / "data"
    data_dir.mkdir()
    reachable(data_dir)
    log = scratch / "servers.log"
    started = time.perf_counter()
    image = make_image(megabytes, scratch / "image")
    print(
        f"  image: {len(image.blobs) - 2} layers, {show(image.size, Unit.BYTES)} in all, made in "
        f"{time.perf_counter() - started:.1f}s; manifest {image.manifest}",
        flush=True,
    )
    write_layout(image, scratch / "layout", "bench")
    server = ManagedPostgres.from_config(load_config(None, data_dir, environ={}))
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        server.start()
        migrate(server.url)
        record_in_kiln(data_dir, server.conninfo, image)
        token = run_checked(
            [sys.executable, "-m", "appliance", "token", "create", "--data-dir", str(data_dir),
             "--log-level", "WARNING"],
            environment=_environment(),
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        kiln, kiln_port = start_kiln(data_dir, workers, log)
        processes.append(("kiln web", kiln))
        distribution, distribution_port = start_distribution(scratch, log)
        processes.append(("docker-registry", distribution))
        run_checked(
            skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
                   f"oci:{scratch / 'layout'}:bench",
                   f"docker://127.0.0.1:{distribution_port}/{REPOSITORY}:latest"),
            timeout=PULL_TIMEOUT,
        )  # fmt: skip
        kiln_creds = ("--src-creds", f"bench:{token}")
        for port, creds, name in (
            (kiln_port, ("--creds", f"bench:{token}"), "Kiln"),
            (distribution_port, (), "distribution"),
        ):
            served = manifest_digest(port, creds)
            if served != image.manifest:
                raise BenchmarkError(f"{name} serves {served}, not the image {image.manifest}")
        destination = scratch / "pulled"
        print("  warming up (one untimed pull from each)", flush=True)
        pull(kiln_port, kiln_creds, destination)
        pull(distribution_port, (), destination)
        kiln_times, distribution_times = alternate(
            repeats,
            lambda _i: pull(kiln_port, kiln_creds, destination),
            lambda _i: pull(distribution_port, (), destination),
        )
    finally:
        for name, process in reversed(processes):
            if not stop(process, STOP_TIMEOUT):
                print(f"  {name} did not stop within {STOP_TIMEOUT:g}s of SIGTERM: killed")
        server.stop()
        left = sweep(str(scratch))
        if left:
            print("  killed leftovers: " + "; ".join(left))
    details = [
        f"image {show(image.size, Unit.BYTES)} in {len(image.blobs) - 2} layers; "
        f"kiln web --workers {workers}; skopeo copy to an OCI layout",
        f"Kiln: {kiln_times.describe()}, {image.size / kiln_times.median / 1e6:.0f} MB/s",
        f"distribution 2.8.2: {distribution_times.describe()}, "
        f"{image.size / distribution_times.median / 1e6:.0f} MB/s",
    ]
    for line in details:
        print(f"  {line}", flush=True)
    return Result(
        name="registry-pull",
        kiln=kiln_times,
        budget=Budget(RATIO_BUDGET, ratio=True),
        baseline=distribution_times,
        baseline_label="distribution",
        details=details,
    )


def run(scratch: Path) -> list[Result]:
    """``bench/run.py``'s entry point: the default image and repeats."""
    return [measure(scratch, megabytes=MEGABYTES, repeats=REPEATS, workers=WORKERS)]


def main(arguments: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=MEGABYTES, help="image size (MB)")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed pulls per registry")
    parser.add_argument("--workers", type=int, default=WORKERS, help="kiln web worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    options = parser.parse_args(arguments)
    scratch = Path(tempfile.mkdtemp(prefix="kiln-bench-registry-"))
    print(f"== registry pull == (scratch {scratch})", flush=True)
    try:
        result = measure(
            scratch,
            megabytes=options.megabytes,
            repeats=options.repeats,
            workers=options.workers,
        )
    except BenchmarkError as error:
        print(f"registry pull: BENCHMARK BROKEN: {error}", file=sys.stderr)
        return 1
    finally:
        if options.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

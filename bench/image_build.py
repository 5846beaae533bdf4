"""Image build benchmark: the OCI image of the ``kiln-demo-big`` environment (3000 files).

Part of ``make bench``; alone::

    .venv/bin/python bench/run.py image      # or: .venv/bin/python bench/image_build.py

What is measured, three figures, all against the same baseline: ``tar -cf - . | gzip -<level>
> file`` of the staged tree (GNU tar and gzip, two processes, so two cores), at Kiln's level
(:data:`~appliance.oci.tarball.GZIP_LEVEL`):

``image`` (budget 1.5x)
    Kiln's :func:`~appliance.oci.build.assemble_image` from the environment staged for the
    in-image prefix: reading the ``conda-meta`` records, planning the layers, writing every
    layer (a deterministic tar per package, gzip, sha256 of the tar and of the gzip stream), the
    config and the manifest. The image's files, as ``tar | gzip`` writes its archive.

``image-stored`` (information)
    ``image`` followed by :func:`~appliance.oci.build.store_image` into an empty local artifact
    store (each blob copied in, fsynced, renamed): the image as the registry serves it.

``image-step`` (information)
    The whole image step of a build as the worker runs it: the staging install for the
    in-image prefix (hardlinks from the warm package cache), then ``image-stored``. The install
    part is budgeted by the ``install`` benchmark.

Each repetition writes into a fresh directory and store (nothing is "already stored"), removed
untimed afterwards; the sides alternate; the first run of each is an untimed warm-up.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from install import prepare
from measure import Budget, Result, alternate, run_tool, timed

from appliance.builder.buildlog import BuildLog
from appliance.builder.install import install_prefix
from appliance.channels.demo import BIG_FILE_COUNT
from appliance.oci.build import assemble_image, store_image
from appliance.oci.image import BaseImage, ImageDescription
from appliance.oci.tarball import GZIP_LEVEL
from appliance.storage import LocalArtifactStore

#: Repetitions of each side.
REPEATS = 7
#: At most this many times the baseline.
BUDGET = Budget(1.5, ratio=True)
#: The in-image prefix the environment is staged for.
IMAGE_PREFIX = "/opt/conda/envs/big"
#: Blobs are never refreshed here (every store is new).
_DAY = timedelta(days=1)


def run(workdir: Path) -> list[Result]:
    """Measure the image of ``kiln-demo-big`` against ``tar | gzip`` of the same tree."""
    with asyncio.Runner() as runner:
        demo = prepare(workdir, runner)
        staged = workdir / "staged"

        def stage(target: Path) -> None:
            runner.run(
                install_prefix(
                    demo.records,
                    target,
                    package_cache=demo.package_cache,
                    log=BuildLog(),
                    target_prefix=IMAGE_PREFIX,
                )
            )

        stage(staged)
        description = ImageDescription(
            namespace="bench", environment="big", prefix=IMAGE_PREFIX, platform="linux-64"
        )
        scratch = workdir / "runs"
        scratch.mkdir()
        sizes: dict[str, int] = {}

        def image(index: int, *, store: bool = False, with_staging: bool = False) -> float:
            place = scratch / f"kiln-{index}"
            place.mkdir()

            def work() -> None:
                tree = staged
                if with_staging:
                    tree = place / "staged"
                    stage(tree)
                built = assemble_image(
                    staged=tree,
                    description=description,
                    base=BaseImage(),
                    max_layers=100,
                    workdir=place / "layers",
                )
                if store:
                    storage = LocalArtifactStore(place / "storage")
                    store_image(storage, built, refresh_after=_DAY)
                sizes["kiln"] = built.size

            seconds = timed(work)
            shutil.rmtree(place)
            return seconds

        def baseline(index: int) -> float:
            output = scratch / f"tar-{index}.tar.gz"
            command = [
                "sh", "-c", f'tar -C "$1" -cf - . | gzip -{GZIP_LEVEL} > "$2"', "sh",
                str(staged), str(output),
            ]  # fmt: skip
            seconds = timed(lambda: run_tool(command))
            sizes["tar"] = output.stat().st_size
            output.unlink()
            return seconds

        image(-1, store=True)
        baseline(-1)
        kiln_samples, baseline_samples = alternate(REPEATS, image, baseline)
        stored_samples, stored_baseline = alternate(
            REPEATS, lambda i: image(100 + i, store=True), baseline
        )
        step_samples, step_baseline = alternate(
            REPEATS, lambda i: image(200 + i, store=True, with_staging=True), baseline
        )
    return [
        Result(
            name="image",
            kiln=kiln_samples,
            baseline=baseline_samples,
            baseline_label=f"tar|gzip -{GZIP_LEVEL}",
            budget=BUDGET,
            details=(
                f"kiln-demo-big ({BIG_FILE_COUNT} files) staged for {IMAGE_PREFIX}; "
                f"gzip level {GZIP_LEVEL} on both sides",
                f"kiln assemble_image: {kiln_samples.describe()}; "
                f"image {sizes['kiln'] / 1e3:.0f} kB compressed",
                f"tar -cf - . | gzip -{GZIP_LEVEL}: {baseline_samples.describe()}; "
                f"archive {sizes['tar'] / 1e3:.0f} kB",
            ),
        ),
        Result(
            name="image-stored",
            kiln=stored_samples,
            baseline=stored_baseline,
            baseline_label=f"tar|gzip -{GZIP_LEVEL}",
            budget=None,
            details=(
                f"kiln assemble_image + store_image (local storage): {stored_samples.describe()}",
            ),
        ),
        Result(
            name="image-step",
            kiln=step_samples,
            baseline=step_baseline,
            baseline_label=f"tar|gzip -{GZIP_LEVEL}",
            budget=None,
            details=(
                "the build's whole image step: staging install for the in-image prefix, "
                "then the image, stored",
                f"kiln stage + assemble + store: {step_samples.describe()}",
            ),
        ),
    ]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-image-") as scratch:
        results = run(Path(scratch))
    for result in results:
        for line in result.details:
            print(f"  {line}")
        print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``Images`` configuration and how it reaches the build engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.builder.settings import OCI_IMAGE, settings_from_config
from appliance.config import InvalidConfiguration, load_config


def configured(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiln_config.py"
    path.write_text(text)
    return path


def test_defaults_build_images_on_scratch_at_opt_conda(tmp_path: Path) -> None:
    settings = settings_from_config(load_config(None, tmp_path, environ={}))
    assert OCI_IMAGE in settings.artifacts
    assert settings.image.prefix_for("team", "demo") == "/opt/conda/envs/demo"
    assert settings.image.base_for(object()) == "scratch"
    assert settings.image.max_layers == 100
    assert settings.image.build_label is False
    assert settings.image.grace.total_seconds() == 3600


def test_settings_come_from_the_images_section(tmp_path: Path) -> None:
    config = configured(
        tmp_path,
        'c.Images.image_prefix = "/srv/{namespace}/{name}"\n'
        "c.Images.max_layers = 40\n"
        "c.Images.build_label = True\n"
        "c.Images.blob_grace_period = 60\n"
        'c.CondaStore.default_docker_base_image = "debian:bookworm-slim"\n',
    )
    settings = settings_from_config(load_config(config, tmp_path, environ={}))
    assert settings.image.prefix_for("team", "demo") == "/srv/team/demo"
    assert settings.image.max_layers == 40 and settings.image.build_label is True
    assert settings.image.grace.total_seconds() == 60
    assert settings.image.base_for(object()) == "debian:bookworm-slim"


def test_a_callable_base_image_is_asked_per_build(tmp_path: Path) -> None:
    config = configured(
        tmp_path,
        "c.CondaStore.default_docker_base_image = lambda build: f'base/{build.namespace}:1'\n",
    )
    settings = settings_from_config(load_config(config, tmp_path, environ={}))

    class Request:
        namespace = "team"

    assert settings.image.base_for(Request()) == "base/team:1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("opt/{name}", "must be an absolute"),
        ("/opt/../{name}", "must be an absolute"),
        ("/opt/{user}", "unknown placeholder"),
    ],
)
def test_bad_prefixes_are_refused(tmp_path: Path, value: str, message: str) -> None:
    config = configured(tmp_path, f"c.Images.image_prefix = {value!r}\n")
    with pytest.raises(InvalidConfiguration, match=message):
        load_config(config, tmp_path, environ={})

"""Channel names and URLs: what they mean on a server, and the allowed-channels policy."""

from __future__ import annotations

import pytest

from appliance.common.errors import ConfigurationError, SpecificationError
from appliance.schemas import (
    ChannelReference,
    EnvironmentSpec,
    check_allowed_channels,
    normalize_channel,
    parse_specification,
)

ALIAS = "https://conda.anaconda.org"


@pytest.mark.parametrize(
    ("written", "alias", "normalized"),
    [
        ("conda-forge", ALIAS, "https://conda.anaconda.org/conda-forge"),
        ("conda-forge", ALIAS + "/", "https://conda.anaconda.org/conda-forge"),
        ("conda-forge/", ALIAS, "https://conda.anaconda.org/conda-forge"),
        ("conda-forge/label/dev", ALIAS, "https://conda.anaconda.org/conda-forge/label/dev"),
        (" bioconda ", ALIAS, "https://conda.anaconda.org/bioconda"),
        (
            "conda-forge",
            "http://mirror.corp:8080/conda/",
            "http://mirror.corp:8080/conda/conda-forge",
        ),
        ("conda-forge", "/srv/mirror", "file:///srv/mirror/conda-forge"),
        (
            "https://conda.anaconda.org/conda-forge/",
            ALIAS,
            "https://conda.anaconda.org/conda-forge",
        ),
        ("HTTPS://Mirror.Corp/Conda-Forge", ALIAS, "https://mirror.corp/Conda-Forge"),
        ("http://127.0.0.1:8000/chan", ALIAS, "http://127.0.0.1:8000/chan"),
        ("https://user:Token@host/t/abc/chan/", ALIAS, "https://user:Token@host/t/abc/chan"),
        ("file:///srv/channel", ALIAS, "file:///srv/channel"),
        ("file:///srv/channel/", ALIAS, "file:///srv/channel"),
        ("file://localhost/srv/channel", ALIAS, "file:///srv/channel"),
        ("/srv/channel", ALIAS, "file:///srv/channel"),
        ("/srv/channel/", ALIAS, "file:///srv/channel"),
        ("/srv//x/../channel", ALIAS, "file:///srv/channel"),
        ("defaults", ALIAS, "https://conda.anaconda.org/main"),
        ("defaults", "http://mirror/conda", "http://mirror/conda/main"),
    ],
)
def test_normalize_channel(written: str, alias: str, normalized: str) -> None:
    assert normalize_channel(written, channel_alias=alias) == normalized


def test_what_defaults_stands_for_can_be_chosen() -> None:
    assert (
        normalize_channel(
            "defaults", channel_alias=ALIAS, defaults_channel="https://repo.anaconda.com/pkgs/main"
        )
        == "https://repo.anaconda.com/pkgs/main"
    )


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("./local", "relative path"),
        ("../local", "relative path"),
        ("~/channel", "Use an absolute path (/srv/conda/channel) or a file:/// URL"),
        ("C:\\conda\\channel", "Windows path"),
        ("ftp://host/chan", "uses the ftp:// scheme"),
        ("https://host/chan?token=1", "must not have a query"),
        ("file://server/share", "file URLs are local"),
        ("https:///chan", "has no host name"),
        ("nodefaults", "is a marker, not a channel"),
        ("my channel", "contains a space"),
        ("conda-forge::numpy", "only appears in dependencies"),
        ("conda-forge/../secret", "is not a valid channel name"),
        ("", "cannot be empty"),
    ],
)
def test_refused_channels_say_what_to_write(written: str, fragment: str) -> None:
    with pytest.raises(SpecificationError) as caught:
        normalize_channel(written, channel_alias=ALIAS)
    assert caught.value.field == "channels"
    assert fragment in caught.value.message


def test_invalid_alias_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"conda_channel_alias 'conda\.anaconda\.org'"):
        normalize_channel("conda-forge", channel_alias="conda.anaconda.org")


def spec(text: str) -> EnvironmentSpec:
    parsed = parse_specification(text)
    assert isinstance(parsed, EnvironmentSpec)
    return parsed


def test_spec_lists_every_channel_it_names() -> None:
    environment = spec(
        "name: x\nchannels: [conda-forge, /srv/local]\n"
        "dependencies: [numpy, 'bioconda::samtools', 'pkg[channel=fastai]']\n"
    )
    assert environment.channel_references() == (
        ChannelReference("conda-forge", "channels[0]"),
        ChannelReference("/srv/local", "channels[1]"),
        ChannelReference("bioconda", "dependencies[1]"),
        ChannelReference("fastai", "dependencies[2]"),
    )


def test_empty_allowed_list_allows_everything() -> None:
    environment = spec("name: x\nchannels: [anything]\ndependencies: ['other::pkg']\n")
    check_allowed_channels(environment, allowed=(), channel_alias=ALIAS)


def test_allowed_channels_are_compared_after_normalization() -> None:
    environment = spec(
        "name: x\nchannels: ['https://conda.anaconda.org/conda-forge/', defaults]\n"
        "dependencies: ['conda-forge::numpy', 'https://conda.anaconda.org/main::python']\n"
    )
    check_allowed_channels(environment, allowed=["conda-forge", "main"], channel_alias=ALIAS)


def test_refused_channel_names_itself_and_the_allowed_ones() -> None:
    environment = spec("name: x\nchannels: [conda-forge, bioconda]\ndependencies: [numpy]\n")
    with pytest.raises(SpecificationError) as caught:
        check_allowed_channels(
            environment, allowed=["conda-forge", "http://mirror/internal/"], channel_alias=ALIAS
        )
    assert caught.value.field == "channels[1]"
    assert caught.value.message == (
        "channels[1]: channel bioconda (https://conda.anaconda.org/bioconda) is not allowed on "
        "this server; allowed channels: conda-forge (https://conda.anaconda.org/conda-forge), "
        "http://mirror/internal/ (http://mirror/internal)"
    )


def test_channels_named_in_dependencies_are_checked() -> None:
    environment = spec(
        "name: x\nchannels: [conda-forge]\ndependencies: [numpy, 'bioconda::samtools']\n"
    )
    with pytest.raises(SpecificationError) as caught:
        check_allowed_channels(environment, allowed=["conda-forge"], channel_alias=ALIAS)
    assert caught.value.field == "dependencies[1]"
    assert "channel bioconda (https://conda.anaconda.org/bioconda) is not allowed" in (
        caught.value.message
    )


def test_plain_channel_strings_can_be_checked() -> None:
    check_allowed_channels(["/srv/local/"], allowed=["file:///srv/local"], channel_alias=ALIAS)
    with pytest.raises(SpecificationError, match="channel /srv/other"):
        check_allowed_channels(["/srv/other"], allowed=["/srv/local"], channel_alias=ALIAS)


def test_invalid_allowed_entry_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"conda_allowed_channels entry '\./rel'"):
        check_allowed_channels(["conda-forge"], allowed=["./rel"], channel_alias=ALIAS)


def test_solver_dependencies_use_the_servers_alias() -> None:
    environment = spec("name: x\ndependencies: [numpy, 'conda-forge::scipy 1.0']\n")
    assert environment.solver_dependencies(channel_alias="http://mirror/conda") == (
        "numpy",
        "http://mirror/conda/conda-forge::scipy ==1.0",
    )

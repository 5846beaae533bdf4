"""Conda dependency spellings: what users write, what Kiln hands the solver, and what it means."""

from __future__ import annotations

import pytest
from rattler import MatchSpec, PackageRecord
from rattler.package.build_string import BuildString

from appliance.common.errors import SpecificationError
from appliance.schemas import parse_specification
from appliance.schemas.dependencies import (
    InvalidDependency,
    dependency_channel,
    normalize_matchspec,
    resolve_dependency_channel,
)

NORMALIZED = [
    # kept exactly as written: the strict parser reads them as conda does
    ("numpy", "numpy"),
    ("pkg=1.0", "pkg=1.0"),
    ("python=3.11", "python=3.11"),
    ("pkg>=1,<2", "pkg>=1,<2"),
    ("pkg >=1,<2", "pkg >=1,<2"),
    ("pkg ==1.0", "pkg ==1.0"),
    ("pkg 1.0.*", "pkg 1.0.*"),
    ("pkg>=1|<0.5", "pkg>=1|<0.5"),
    ("conda-forge::pkg", "conda-forge::pkg"),
    ("conda-forge/label/dev::pkg >=1", "conda-forge/label/dev::pkg >=1"),
    ("pkg[version='>=1']", "pkg[version='>=1']"),
    ("pkg >=1.0,<2.0 py*", "pkg >=1.0,<2.0 py*"),
    ("  numpy  ", "numpy"),
    # rewritten: conda's spelling that the strict parser refuses, same meaning
    ("pkg 1.0", "pkg ==1.0"),
    ("pkg  1.0", "pkg ==1.0"),
    ("pkg=1.0=build_0", "pkg ==1.0 build_0"),
    ("pkg 1.0 build_0", "pkg ==1.0 build_0"),
    ("pkg==1.0=build_0", "pkg ==1.0 build_0"),
    ("pkg=1.0.*", "pkg 1.0.*"),
    ("pkg[version='1.0']", "pkg ==1.0"),
    ("python=3.11=*_cpython", "python ==3.11 *_cpython"),
    ("pkg=*=*cuda*", "pkg * *cuda*"),
    ("conda-forge::pkg 1.0", "conda-forge::pkg ==1.0"),
    ("conda-forge/linux-64::pkg 1.0", "conda-forge/linux-64::pkg ==1.0"),
    # the channel stays as written (rattler's own text would shorten the URL to a name)
    (
        "https://conda.anaconda.org/conda-forge::pkg 1.0",
        "https://conda.anaconda.org/conda-forge::pkg ==1.0",
    ),
    ("http://127.0.0.1:8000/my/chan::pkg 1.0", "http://127.0.0.1:8000/my/chan::pkg ==1.0"),
    ("/srv/channel::pkg 1.0", "/srv/channel::pkg ==1.0"),
    ("pkg[version='1.0', channel=bioconda]", "bioconda::pkg ==1.0"),
]


@pytest.mark.parametrize(("written", "normalized"), NORMALIZED)
def test_conda_spellings_normalize_to_strict_specs(written: str, normalized: str) -> None:
    assert normalize_matchspec(written) == normalized
    MatchSpec(normalized, strict=True)  # the solver's parser accepts it


@pytest.mark.parametrize(("written", "normalized"), NORMALIZED)
def test_normalized_spec_means_what_conda_means(written: str, normalized: str) -> None:
    lenient = MatchSpec(written)
    strict = MatchSpec(normalized, strict=True)
    assert str(strict) == str(lenient)
    assert strict.subdir == lenient.subdir
    if lenient.channel is not None:
        assert strict.channel is not None
        assert strict.channel.base_url == lenient.channel.base_url


def _record(version: str, build: str = "build_0") -> PackageRecord:
    return PackageRecord(
        name="pkg", version=version, build=BuildString(build), build_number=0, subdir="linux-64"
    )


def test_equals_version_is_fuzzy_and_space_version_is_exact() -> None:
    fuzzy = MatchSpec(normalize_matchspec("pkg=1.0"), strict=True)
    exact = MatchSpec(normalize_matchspec("pkg 1.0"), strict=True)
    assert [fuzzy.matches(_record(v)) for v in ("1.0", "1.0.0", "1.0.1", "1.1")] == [
        True,
        True,
        True,
        False,
    ]
    assert [exact.matches(_record(v)) for v in ("1.0", "1.0.0", "1.0.1", "1.1")] == [
        True,
        True,
        False,
        False,
    ]


def test_build_string_is_kept() -> None:
    spec = MatchSpec(normalize_matchspec("pkg=1.0=build_0"), strict=True)
    assert spec.matches(_record("1.0", "build_0"))
    assert not spec.matches(_record("1.0", "build_1"))


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("numpy>=>1", "unable to parse version spec"),
        ("pkg *.1", "cannot be read unambiguously"),
        ("py*", "is not a valid conda package spec"),
        ("pkg[extras=[a]]", "invalid bracket key: extras"),
        ("pkg[when='python >=3.8']", "is not a valid conda package spec"),
        ("./rel::pkg", "relative path"),
        ("", "cannot be empty"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(written: str, fragment: str) -> None:
    with pytest.raises(InvalidDependency) as caught:
        normalize_matchspec(written)
    assert fragment in str(caught.value)


def test_unparsable_dependency_names_entry_line_and_suggests_quoting() -> None:
    text = "name: x\ndependencies:\n  - numpy\n  - numpy>=>1\n"
    with pytest.raises(SpecificationError) as caught:
        parse_specification(text)
    error = caught.value
    assert (error.field, error.line) == ("dependencies[1]", 4)
    assert error.message.startswith("dependencies[1] (line 4): 'numpy>=>1' is not a valid conda")
    assert "quote specs" in error.message
    assert "numpy=1.26" in error.message  # an example of what to write


@pytest.mark.parametrize(
    ("spec", "channel"),
    [
        ("numpy", None),
        ("conda-forge::numpy", "conda-forge"),
        ("conda-forge/linux-64::numpy ==1.0", "conda-forge"),
        ("http://127.0.0.1:8000/my/chan/linux-64::pkg", "http://127.0.0.1:8000/my/chan"),
        ("pkg[version='>=1', channel=bioconda]", "bioconda"),
        ("defaults::pkg", "defaults"),
    ],
)
def test_dependency_channel_is_the_channel_as_written(spec: str, channel: str | None) -> None:
    assert dependency_channel(spec) == channel


@pytest.mark.parametrize(
    ("spec", "resolved", "base_url"),
    [
        ("numpy >=1", "numpy >=1", None),
        (
            "conda-forge::numpy >=1",
            "http://mirror:8080/conda/conda-forge::numpy >=1",
            "http://mirror:8080/conda/conda-forge/",
        ),
        (
            "conda-forge/linux-64::numpy",
            "http://mirror:8080/conda/conda-forge/linux-64::numpy",
            "http://mirror:8080/conda/conda-forge/",
        ),
        ("/srv/chan::pkg ==1.0", "file:///srv/chan::pkg ==1.0", "file:///srv/chan/"),
        ("defaults::pkg", "http://mirror:8080/conda/main::pkg", "http://mirror:8080/conda/main/"),
        (
            "pkg[version='>=1', channel=bioconda]",
            "http://mirror:8080/conda/bioconda::pkg >=1",
            "http://mirror:8080/conda/bioconda/",
        ),
    ],
)
def test_solver_dependencies_name_channels_under_the_servers_alias(
    spec: str, resolved: str, base_url: str | None
) -> None:
    assert resolve_dependency_channel(spec, channel_alias="http://mirror:8080/conda/") == resolved
    parsed = MatchSpec(resolved, strict=True)
    assert (parsed.channel.base_url if parsed.channel else None) == base_url

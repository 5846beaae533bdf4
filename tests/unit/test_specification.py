"""Environment specifications as users submit them: what is accepted, what it becomes, and what
each kind of mistake tells the user (field, line and what is allowed)."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from appliance.common.errors import SpecificationError
from appliance.schemas import (
    EnvironmentSpec,
    SpecLimits,
    parse_specification,
    specification_from_dict,
)

ENVIRONMENT = textwrap.dedent(
    """\
    # a data-science environment
    name: data-science
    description: Pandas and friends
    channels:
      - conda-forge
      - nodefaults
    dependencies:
      - python=3.11
      - numpy 1.26
      - pandas>=2,<3
      - conda-forge::scipy
      - libblas=3.9.0=20_linux64_openblas
      - pip
      - pip:
          - requests>=2.31
          - --index-url https://pypi.org/simple
    variables:
      OMP_NUM_THREADS: 4
      RATIO: 1.10
      DEBUG: true
      GREETING: yes
    prefix: /opt/conda/envs/data-science
    """
)


def parse_env(text: str, **kwargs: object) -> EnvironmentSpec:
    spec = parse_specification(textwrap.dedent(text), **kwargs)  # type: ignore[arg-type]
    assert isinstance(spec, EnvironmentSpec)
    return spec


def error_of(text: str | bytes, **kwargs: object) -> SpecificationError:
    if isinstance(text, str):
        text = textwrap.dedent(text)
    with pytest.raises(SpecificationError) as caught:
        parse_specification(text, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- what an accepted specification becomes -----------------------------------------------


def test_environment_yaml_is_read_into_a_spec() -> None:
    spec = parse_env(ENVIRONMENT)
    assert spec == EnvironmentSpec(
        name="data-science",
        channels=("conda-forge",),
        dependencies=(
            "python=3.11",
            "numpy ==1.26",
            "pandas>=2,<3",
            "conda-forge::scipy",
            "libblas ==3.9.0 20_linux64_openblas",
            "pip",
        ),
        pip=("requests>=2.31", "--index-url https://pypi.org/simple"),
        variables={"OMP_NUM_THREADS": "4", "RATIO": "1.10", "DEBUG": "true", "GREETING": "yes"},
        description="Pandas and friends",
    )


def test_prefix_is_accepted_and_ignored() -> None:
    spec = parse_env(ENVIRONMENT)
    assert "prefix" not in spec.to_dict()


def test_variables_keep_the_text_as_written() -> None:
    spec = parse_env("""\
        name: x
        variables:
          VERSION: 1.10
          OCTAL: 010
          EMPTY: ''
          QUOTED: "3"
        """)
    assert spec.variables == {"VERSION": "1.10", "OCTAL": "010", "EMPTY": "", "QUOTED": "3"}


def test_name_argument_overrides_or_provides_the_name() -> None:
    assert parse_env(ENVIRONMENT, name="other").name == "other"
    assert parse_env("dependencies: [numpy]\n", name="given").name == "given"


def test_empty_sections_mean_none() -> None:
    spec = parse_env("name: x\nchannels:\ndependencies:\nvariables:\n")
    assert (spec.channels, spec.dependencies, spec.pip, dict(spec.variables)) == ((), (), (), {})


def test_json_and_bytes_are_accepted() -> None:
    as_json = json.dumps({"name": "x", "channels": ["conda-forge"], "dependencies": ["numpy 1.0"]})
    from_json = parse_env(as_json)
    from_bytes = parse_specification(("\ufeff" + as_json).encode())
    assert from_json == from_bytes
    assert from_json.dependencies == ("numpy ==1.0",)


def test_flow_style_yaml_that_is_not_json_is_read_as_yaml() -> None:
    assert parse_env("{name: x, dependencies: [numpy]}").dependencies == ("numpy",)


def test_to_dict_is_conda_environment_shape() -> None:
    assert parse_env(ENVIRONMENT).to_dict() == {
        "name": "data-science",
        "channels": ["conda-forge"],
        "dependencies": [
            "python=3.11",
            "numpy ==1.26",
            "pandas>=2,<3",
            "conda-forge::scipy",
            "libblas ==3.9.0 20_linux64_openblas",
            "pip",
            {"pip": ["requests>=2.31", "--index-url https://pypi.org/simple"]},
        ],
        "variables": {"OMP_NUM_THREADS": "4", "RATIO": "1.10", "DEBUG": "true", "GREETING": "yes"},
        "description": "Pandas and friends",
    }


def test_dict_and_yaml_round_trip() -> None:
    spec = parse_env(ENVIRONMENT)
    assert specification_from_dict(spec.to_dict()) == spec
    assert parse_specification(spec.to_yaml()) == spec
    assert parse_specification(json.dumps(spec.to_dict())) == spec


def test_yaml_output_quotes_values_yaml_1_1_readers_would_misread() -> None:
    text = parse_env(ENVIRONMENT).to_yaml()
    assert "GREETING: 'yes'" in text
    assert "RATIO: '1.10'" in text
    assert text.startswith("name: data-science\nchannels:\n- conda-forge\ndependencies:\n")


# --- content address --------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_keeps_list_order() -> None:
    spec = parse_env("""\
        name: x
        channels: [conda-forge, bioconda]
        dependencies: [zlib, numpy]
        """)
    expected = '{"channels":["conda-forge","bioconda"],"dependencies":["zlib","numpy"],"name":"x"}'
    assert spec.canonical_json() == expected
    assert spec.sha256() == hashlib.sha256(expected.encode()).hexdigest()


def test_hash_ignores_formatting_comments_and_key_order() -> None:
    first = parse_env("name: x\nchannels: [conda-forge]\ndependencies: [numpy]\n")
    second = parse_env("""\
        # comment
        dependencies:
          - numpy    # trailing comment
        channels:
          - conda-forge
        name: x
        """)
    assert first.sha256() == second.sha256()
    assert hash(first) == hash(second)


def test_hash_depends_on_channel_order() -> None:
    first = parse_env("name: x\nchannels: [conda-forge, bioconda]\ndependencies: [numpy]\n")
    second = parse_env("name: x\nchannels: [bioconda, conda-forge]\ndependencies: [numpy]\n")
    assert first.sha256() != second.sha256()


def test_hash_is_the_same_for_equivalent_spellings_only_when_the_text_is() -> None:
    # "numpy 1.0" is stored as "numpy ==1.0": both spellings address the same spec
    assert (
        parse_env("name: x\ndependencies: [numpy 1.0]\n").sha256()
        == parse_env("name: x\ndependencies: ['numpy ==1.0']\n").sha256()
    )


# --- mistakes, one per kind: field, line and a message that says what is allowed ---------


def test_yaml_syntax_error_reports_the_line() -> None:
    error = error_of("name: x\ndependencies:\n  - numpy\n  - scipy: 1: 2\nchannels: []\n")
    assert error.line == 4
    assert error.field is None
    assert error.message.startswith(
        "line 4: the text is not valid YAML: mapping values are not allowed in this context "
        "at column 13."
    )
    assert "quote values that contain ': '" in error.message


def test_unterminated_quote_says_where_it_started() -> None:
    error = error_of('name: x\ndependencies:\n  - numpy\n  - "scipy\n  - pandas\n')
    assert "which starts at line 4" in error.message


def test_tab_indentation_is_a_syntax_error_with_a_hint() -> None:
    error = error_of("name: x\ndependencies:\n\t- numpy\n")
    assert error.line == 3
    assert "spaces (not tabs)" in error.message


def test_document_must_be_a_mapping() -> None:
    error = error_of("- numpy\n- scipy\n")
    assert error.line == 1
    assert "must be a mapping with the keys name, channels, dependencies" in error.message
    assert "not a list" in error.message


def test_empty_document() -> None:
    assert "the document is empty" in error_of("# nothing here\n").message


def test_missing_name() -> None:
    error = error_of("dependencies: [numpy]\n")
    assert error.field == "name"
    assert "add 'name: my-env'" in error.message
    assert "letters, digits, '_', '.', '+' and '-'" in error.message


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("''", "cannot be empty"),
        ("../etc", "contains '..'"),
        ("a..b", "contains '..'"),
        ("a/b", "contains '/'"),
        (".hidden", "starts with '.'"),
        ("-rf", "starts with '-'"),
        ("'my env'", "contains ' '"),
        ("'x@1'", "contains '@'"),
        ("café", "contains 'é'"),
        ("x" * 65, "is 65 characters long"),
        ("2024", "must be text, not a number; quote it"),
    ],
)
def test_bad_names_are_refused(name: str, fragment: str) -> None:
    error = error_of(f"description: d\nname: {name}\n")
    assert (error.field, error.line) == ("name", 2)
    assert fragment in error.message
    assert "at most 64 characters" in error.message


@pytest.mark.parametrize("name", ["x", "my-env", "Py3.11_cuda+mkl", "_private", "0" * 64])
def test_good_names_are_accepted(name: str) -> None:
    assert parse_env(f"name: '{name}'\n").name == name


def test_name_length_limit_is_configurable() -> None:
    error = error_of("name: abcdef\n", limits=SpecLimits(max_name_length=5))
    assert "at most 5 characters" in error.message


def test_null_dependency_entry() -> None:
    error = error_of("name: x\ndependencies:\n  - numpy\n  -\n  - scipy\n")
    assert (error.field, error.line) == ("dependencies[1]", 4)
    assert "empty entry; remove the '-'" in error.message


def test_trailing_colon_turns_a_spec_into_a_mapping() -> None:
    error = error_of("name: x\ndependencies:\n  - numpy=1.2\n  - python>=3.1:\n")
    assert (error.field, error.line) == ("dependencies[1]", 4)
    assert "YAML read 'python>=3.1:' as a mapping" in error.message
    assert 'write "python>=3.1"' in error.message


def test_mapping_instead_of_a_spec_suggests_quoted_text() -> None:
    error = error_of("name: x\ndependencies:\n  - numpy: 1.2\n")
    assert (error.field, error.line) == ("dependencies[0]", 3)
    assert '"numpy=1.2"' in error.message
    assert "only mapping allowed in dependencies is the '- pip:' block" in error.message


def test_number_instead_of_a_spec_is_shown_as_written() -> None:
    error = error_of("name: x\ndependencies:\n  - 3.10\n")
    assert (error.field, error.line) == ("dependencies[0]", 3)
    assert "YAML read '3.10' as a number" in error.message
    assert "quote it" in error.message


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    error = error_of("name: x\ndependencise: [numpy]\n")
    assert (error.field, error.line) == ("dependencise", 2)
    assert (
        "allowed keys: name, channels, dependencies, variables, description, prefix"
        in error.message
    )
    assert "conda-lock lockfile has version, metadata, package" in error.message


def test_variables_must_be_a_mapping() -> None:
    error = error_of("name: x\nvariables:\n  - A=1\n")
    assert (error.field, error.line) == ("variables", 2)
    assert "mapping of NAME: value, not a list" in error.message


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ("  A:\n", "variables.A", "not empty (null); write '' for an empty value"),
        ("  A: [1, 2]\n", "variables.A", "text or a number, not a list"),
        ("  A: {b: 1}\n", "variables.A", "text or a number, not a mapping"),
        ("  1A: x\n", "variables.1A", "not a valid environment variable name"),
        ("  MY-VAR: x\n", "variables.MY-VAR", "letters, digits and '_'"),
    ],
)
def test_bad_variables(body: str, field: str, fragment: str) -> None:
    error = error_of("name: x\nvariables:\n" + body)
    assert (error.field, error.line) == (field, 3)
    assert fragment in error.message


@pytest.mark.parametrize(
    ("block", "field", "line", "fragment"),
    [
        ("  - pip: requests\n", "dependencies[0].pip", 3, "must be a list of requirements"),
        ("  - pip:\n", "dependencies[0].pip", 3, "the pip block is empty"),
        ("  - pip:\n    - 1.0\n", "dependencies[0].pip[0]", 4, "not a number ('1.0'); quote it"),
        (
            "  - pip:\n    - requests\n    - --pre\n",
            "dependencies[0].pip[1]",
            5,
            "unknown pip option '--pre'; allowed options: --index-url URL, --extra-index-url "
            "URL, --trusted-host HOST, --find-links URL",
        ),
        ("  - pip:\n    - --index-url\n", "dependencies[0].pip[0]", 4, "needs one URL after it"),
        (
            "  - pip:\n    - git+https://host/repo.git\n",
            "dependencies[0].pip[0]",
            4,
            "not a PEP 508 requirement",
        ),
        (
            "  - pip: [a]\n  - pip: [b]\n",
            "dependencies[1]",
            4,
            "a second pip block",
        ),
    ],
)
def test_bad_pip_blocks(block: str, field: str, line: int, fragment: str) -> None:
    error = error_of("name: x\ndependencies:\n" + block)
    assert (error.field, error.line) == (field, line)
    assert fragment in error.message


def test_pip_options_take_a_value_with_space_or_equals() -> None:
    spec = parse_env("""\
        name: x
        dependencies:
          - pip:
            - --index-url=https://pypi.example/simple
            - --extra-index-url https://extra.example/simple
            - --trusted-host pypi.example
            - --find-links /srv/wheels
            - mypkg @ https://host/mypkg-1.0-py3-none-any.whl
            - "requests[socks]==2.31; python_version > '3.8'"
        """)
    assert len(spec.pip) == 6


def test_oversized_text_is_refused_before_parsing() -> None:
    error = error_of(
        "name: x\n" + "#" * 200, limits=SpecLimits(max_bytes=100, max_lockfile_bytes=100)
    )
    assert "the specification is 208 bytes; the limit on this server is 100 bytes" in (
        error.message
    )


def test_environment_over_max_bytes_is_refused_even_under_the_lockfile_limit() -> None:
    error = error_of(
        "name: x\ndependencies: [numpy]\n" + "#" * 200, limits=SpecLimits(max_bytes=100)
    )
    assert "the limit on this server is 100 bytes" in error.message


def test_too_many_dependencies() -> None:
    text = "name: x\ndependencies:\n" + "".join(f"  - pkg{i}\n" for i in range(5))
    text += "  - pip: [a, b]\n"
    error = error_of(text, limits=SpecLimits(max_dependencies=6))
    assert (error.field, error.line) == ("dependencies", 2)
    assert "7 dependencies (5 conda, 2 pip); the limit on this server is 6" in error.message


@pytest.mark.parametrize(
    ("channels", "line", "fragment"),
    [
        ("channels: conda-forge\n", 2, "channels must be a list"),
        ("channels:\n  - ./local\n", 3, "relative path"),
        ("channels:\n  - ~/chan\n", 3, "Use an absolute path"),
        ("channels:\n  -\n", 3, "empty entry"),
        ("channels:\n  - ftp://host/chan\n", 3, "http://, https:// and file:// only"),
        ("channels:\n  - conda-forge::x\n", 3, "only appears in dependencies"),
    ],
)
def test_bad_channels(channels: str, line: int, fragment: str) -> None:
    error = error_of("name: x\n" + channels)
    assert error.line == line
    assert error.field is not None and error.field.startswith("channels")
    assert fragment in error.message


def test_description_must_be_text() -> None:
    error = error_of("name: x\ndescription: [a]\n")
    assert (error.field, error.line) == ("description", 2)


def test_duplicate_keys_are_refused() -> None:
    error = error_of("name: x\ndependencies: [numpy]\nname: y\n")
    assert error.line == 3
    assert "duplicate key 'name' (first written at line 1)" in error.message


def test_duplicate_keys_in_json_are_refused_with_a_line() -> None:
    error = error_of('{"name": "x",\n "name": "y"}')
    assert error.line == 2
    assert "duplicate key 'name'" in error.message


def test_custom_yaml_tags_are_refused() -> None:
    error = error_of("name: !!python/name:os.system x\n")
    assert error.line == 1
    assert "unsupported YAML tag" in error.message


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    error = error_of("\n".join(lines) + "\n")
    assert "aliases expand this document" in error.message


def test_deep_nesting_is_refused() -> None:
    error = error_of("name: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested" in error.message


def test_non_utf8_bytes_are_refused() -> None:
    error = error_of(b"name: caf\xe9\n")
    assert "not UTF-8 (invalid byte at offset 9)" in error.message


def test_control_characters_are_refused_with_a_line() -> None:
    error = error_of("name: x\ndescription: a\x00b\n")
    assert error.line == 2
    assert "character YAML does not allow" in error.message


def test_pixi_lock_files_are_recognised() -> None:
    error = error_of("version: 6\nenvironments: {}\npackages: []\n")
    assert "pixi/rattler lock file" in error.message
    assert "conda-lock v1" in error.message


def test_from_dict_validates_like_text() -> None:
    with pytest.raises(SpecificationError) as caught:
        specification_from_dict({"name": "x", "dependencies": [None]})
    assert (caught.value.field, caught.value.line) == ("dependencies[0]", None)
    assert caught.value.message.startswith("dependencies[0]: empty entry")

"""The package index through the REST API: channels, package search (filters, ``distinct_on``,
sorts, pages) and the packages a build installed; literal matching of odd search strings."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from appliance.api.context import ApiContext
from appliance.channels.repodata import IndexedPackage
from appliance.db.models import CondaPackage, CondaPackageBuild, build_conda_package_build
from appliance.services.channels import add_package_builds, ensure_channel, mark_channel_refreshed
from tests.fixtures.api import Callers
from tests.fixtures.postgres import TestDatabase
from tests.integration.test_api_builds import TOOL, Builds, explanation

Client = TestClient[Litestar]

ALPHA = "https://conda.example.org/alpha"
BETA = "https://conda.example.org/beta"


def indexed(
    name: str, version: str, build: str = "h0_0", subdir: str = "linux-64"
) -> IndexedPackage:
    return IndexedPackage(
        subdir=subdir,
        filename=f"{name}-{version}-{build}.conda",
        name=name,
        version=version,
        build=build,
        build_number=0,
        depends=(),
        constrains=(),
        md5=None,
        sha256=None,
        size=1,
        license="BSD-3-Clause",
        license_family="BSD",
        timestamp=None,
    )


@pytest.fixture
def index(db_sessions: sessionmaker[Session]) -> None:
    """Two channels: ``alpha`` (refreshed) and ``beta`` (never refreshed)."""
    with db_sessions.begin() as session:
        alpha = ensure_channel(session, ALPHA)
        add_package_builds(
            session,
            alpha,
            [
                indexed("numpy", "1.9", "py39h1_0"),
                indexed("numpy", "1.9", "py39h1_0", subdir="osx-64"),
                indexed("numpy", "1.10", "py311h2_0"),
                indexed("numpy_x", "1.0"),
                indexed("num%py", "1.0"),
                indexed("scipy", "1.0", "py311h3_0"),
            ],
        )
        mark_channel_refreshed(session, alpha)
        beta = ensure_channel(session, BETA)
        add_package_builds(session, beta, [indexed("numpy", "1.9", "py39h1_0")])


@pytest.fixture
def builds(
    db_sessions: sessionmaker[Session], api_context: ApiContext, database: TestDatabase
) -> Builds:
    return Builds(db_sessions, api_context, database)


def rows(response: Any) -> list[tuple[str, str, str]]:
    """(channel, name, version) of each package listed."""
    assert response.status_code == 200, response.text
    return [(p["channel"]["name"][-5:], p["name"], p["version"]) for p in response.json()["data"]]


# --- channels ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("index")
def test_anyone_lists_the_channels_sorted_and_paged(api: Client, callers: Callers) -> None:
    listed = api.get("/api/v1/channel/")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [c["name"] for c in body["data"]] == [ALPHA, BETA]
    assert (body["page"], body["size"], body["count"]) == (1, 100, 2)
    assert body["data"][0]["last_update"] is not None and body["data"][1]["last_update"] is None
    assert set(body["data"][0]) == {"id", "name", "last_update"}
    descending = api.get("/api/v1/channel/?order=desc&size=1", headers=callers.admin).json()
    assert ([c["name"] for c in descending["data"]], descending["count"]) == ([BETA], 2)
    assert api.get("/api/v1/channel/?page=2&size=1").json()["data"][0]["name"] == BETA
    refused = api.get("/api/v1/channel/?sort_by=last_update")
    assert refused.status_code == 400
    assert "sort_by: Invalid enum value 'last_update'" in explanation(refused)


# --- package search ---------------------------------------------------------------------------


@pytest.mark.usefixtures("index")
def test_packages_are_searched_by_name_substring_exact_name_and_build(api: Client) -> None:
    everything = rows(api.get("/api/v1/package/"))
    assert everything == [
        ("alpha", "num%py", "1.0"),
        ("alpha", "numpy", "1.10"),
        ("alpha", "numpy", "1.9"),
        ("alpha", "numpy_x", "1.0"),
        ("alpha", "scipy", "1.0"),
        ("/beta", "numpy", "1.9"),
    ]
    item = api.get("/api/v1/package/?search=scipy").json()["data"][0]
    assert set(item) == {"id", "channel", "license", "name", "version", "summary"}
    assert item["license"] == "BSD-3-Clause" and set(item["channel"]) == {"id", "name"}

    assert [r[1] for r in rows(api.get("/api/v1/package/?search=mpy"))] == [
        "numpy", "numpy", "numpy_x", "numpy",
    ]  # fmt: skip
    exact = [("alpha", "numpy", "1.10"), ("alpha", "numpy", "1.9"), ("/beta", "numpy", "1.9")]
    assert rows(api.get("/api/v1/package/?search=numpy&exact=true")) == exact
    assert rows(api.get("/api/v1/package/?exact=numpy")) == exact
    assert rows(api.get("/api/v1/package/?search=numpy&exact=")) == rows(
        api.get("/api/v1/package/?search=numpy")
    )
    assert rows(api.get("/api/v1/package/?build=py311")) == [
        ("alpha", "numpy", "1.10"),
        ("alpha", "scipy", "1.0"),
    ]
    assert rows(api.get("/api/v1/package/?search=num&build=py39")) == [
        ("alpha", "numpy", "1.9"),
        ("/beta", "numpy", "1.9"),
    ]


@pytest.mark.usefixtures("index")
def test_wildcards_and_sql_in_search_strings_match_only_themselves(
    api: Client, db_sessions: sessionmaker[Session]
) -> None:
    assert [r[1] for r in rows(api.get("/api/v1/package/?search=%25"))] == ["num%py"]
    assert [r[1] for r in rows(api.get("/api/v1/package/?search=_"))] == ["numpy_x"]
    assert rows(api.get("/api/v1/package/?search=num_y")) == []
    assert rows(api.get("/api/v1/package/?search=num%25&exact=1")) == []
    assert rows(api.get("/api/v1/package/?build=%25")) == []
    for attack in ("'; DROP TABLE conda_package; --", "numpy' OR '1'='1", "\\", "numpy\\%"):
        response = api.get("/api/v1/package/", params={"search": attack})
        assert rows(response) == [], attack
        response = api.get("/api/v1/package/", params={"search": attack, "exact": "1"})
        assert rows(response) == [], attack
    with db_sessions() as session:
        assert session.scalar(select(func.count()).select_from(CondaPackage)) == 6


@pytest.mark.usefixtures("index")
def test_distinct_on_keeps_one_package_per_value(api: Client) -> None:
    names = api.get("/api/v1/package/?search=num&distinct_on=name").json()
    assert [p["name"] for p in names["data"]] == ["num%py", "numpy", "numpy_x"]
    assert names["count"] == 3
    # conda-store's UI version picker.
    versions = api.get(
        "/api/v1/package/?search=numpy&exact=true&distinct_on=version&order=desc&sort_by=version"
    )
    assert [p["version"] for p in versions.json()["data"]] == ["1.9", "1.10"]  # text order
    pairs = rows(api.get("/api/v1/package/?distinct_on=channel&distinct_on=name&search=numpy"))
    assert pairs == [
        ("alpha", "numpy", "1.9"),
        ("alpha", "numpy_x", "1.0"),
        ("/beta", "numpy", "1.9"),
    ]
    channels = api.get(
        "/api/v1/package/?distinct_on=channel&distinct_on=name&search=numpy&size=2"
    ).json()
    assert (len(channels["data"]), channels["count"]) == (2, 3)
    page_two = api.get("/api/v1/package/?distinct_on=name&size=2&page=2").json()
    assert [p["name"] for p in page_two["data"]] == ["numpy_x", "scipy"]


@pytest.mark.usefixtures("index")
def test_packages_are_sorted_by_the_keys_given(api: Client) -> None:
    by_version = rows(api.get("/api/v1/package/?sort_by=version&sort_by=name"))
    assert [r[2] for r in by_version] == ["1.0", "1.0", "1.0", "1.10", "1.9", "1.9"]
    by_name = rows(api.get("/api/v1/package/?sort_by=name&order=desc&size=2"))
    assert by_name == [("alpha", "scipy", "1.0"), ("alpha", "numpy_x", "1.0")]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("distinct_on=license", "distinct_on: Invalid enum value 'license'"),
        ("sort_by=build", "sort_by: Invalid enum value 'build'"),
        ("order=sideways", "order: Invalid enum value 'sideways'"),
        ("search=a%00b", "search must not contain a NUL character"),
        ("exact=" + "n" * 256, "exact is 256 characters long"),
        ("build=%00", "build must not contain a NUL character"),
        ("page=-1", "page: Expected `int` >= 1"),
        (f"page={2**40}", "page must be at most"),
        ("size=abc", "size: Expected `int | null`, got `str`"),
    ],
)
@pytest.mark.usefixtures("index")
def test_bad_search_parameters_are_refused(api: Client, query: str, message: str) -> None:
    response = api.get(f"/api/v1/package/?{query}")
    assert response.status_code == 400, response.text
    assert message in explanation(response)


# --- the packages of a build ------------------------------------------------------------------


def test_a_viewer_lists_the_packages_a_build_installed(
    api: Client, callers: Callers, builds: Builds, db_sessions: sessionmaker[Session]
) -> None:
    build_id = builds.submit(TOOL, "tool", namespace="team")
    builds.run_queued()
    url = f"/api/v1/build/{build_id}/packages/"
    viewer = callers.headers({"team/tool": ["viewer"]})
    listed = api.get(url, headers=viewer)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    names = [p["name"] for p in body["data"]]
    assert names == sorted(names) and {"kiln-demo-tool", "kiln-demo-lib", "kiln-demo-data"} <= set(
        names
    )
    assert body["count"] == len(names)
    assert len({p["channel"]["name"] for p in body["data"]}) == 1  # all from the demo channel

    def listed_names(query: str) -> list[str]:
        response = api.get(f"{url}?{query}", headers=viewer)
        assert response.status_code == 200, response.text
        return [p["name"] for p in response.json()["data"]]

    assert listed_names("search=demo-l") == ["kiln-demo-lib"]
    assert listed_names("search=kiln-demo-tool&exact=1") == ["kiln-demo-tool"]
    assert listed_names("exact=kiln-demo") == []
    assert listed_names("search=%25") == [] and listed_names("search=_") == []
    assert listed_names("sort_by=name&order=desc") == sorted(names, reverse=True)
    assert listed_names("size=1&page=2") == [names[1]]
    with db_sessions() as session:
        lib_build = session.scalar(
            select(CondaPackageBuild.build)
            .join(
                build_conda_package_build,
                build_conda_package_build.c.conda_package_build_id == CondaPackageBuild.id,
            )
            .join(CondaPackage, CondaPackage.id == CondaPackageBuild.package_id)
            .where(
                build_conda_package_build.c.build_id == build_id,
                CondaPackage.name == "kiln-demo-lib",
            )
        )
    assert lib_build is not None
    assert "kiln-demo-lib" in listed_names(f"build={lib_build}")
    assert listed_names("build=no-such-build") == []

    refused = api.get(url, headers=callers.headers({"other/*": ["admin"]}))
    assert refused.status_code == 403 and "environment::read on team/tool" in refused.text
    assert api.get(url).status_code == 401
    assert api.get(f"{url}?sort_by=version", headers=viewer).status_code == 400
    assert api.get("/api/v1/build/999999/packages/", headers=viewer).status_code == 404


def test_a_queued_build_has_no_packages_yet(api: Client, callers: Callers, builds: Builds) -> None:
    build_id = builds.submit(TOOL, "tool")
    listed = api.get(f"/api/v1/build/{build_id}/packages/", headers=callers.admin).json()
    assert (listed["data"], listed["count"]) == ([], 0)

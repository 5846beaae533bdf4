"""The web app without a database: probes, metrics, error mapping and routing, with the
database's facts replaced by a fake (:class:`FakeStatus`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.params import FromPath, FromQuery
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from appliance.common.errors import (
    ArtifactNotFound,
    KilnError,
    SpecificationError,
    StorageError,
)
from appliance.db.errors import DatabaseUnavailable
from appliance.db.schema import SchemaStatus
from appliance.db.scripts import code_revision
from appliance.db.status import InstallationStatus, ReadinessFacts, StoreSample, WorkerHeartbeat
from appliance.web import WebSettings, create_app
from appliance.web.client_quirks import without_client_slash
from appliance.web.errors import status_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def worker(worker_id: int, age: float) -> WorkerHeartbeat:
    return WorkerHeartbeat(worker_id=worker_id, last_heartbeat=NOW, age_seconds=age)


def schema(revision: str | None = None, *, queue: bool = True) -> SchemaStatus:
    return SchemaStatus(
        database="postgresql+psycopg://kiln@db/kiln",
        database_revision=code_revision() if revision is None else revision,
        code_revision=code_revision(),
        queue_schema_present=queue,
    )


@dataclass
class FakeStatus:
    """Facts a test sets; ``error`` is raised by every read; ``delay`` seconds pass first."""

    facts: ReadinessFacts = field(
        default_factory=lambda: ReadinessFacts(schema=schema(), workers=[worker(1, 1.0)])
    )
    status: InstallationStatus = field(default_factory=InstallationStatus)
    error: Exception | None = None
    delay: float = 0.0
    reads: int = 0
    closed: bool = False

    async def _read(self) -> None:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def readiness_facts(self) -> ReadinessFacts:
        await self._read()
        return self.facts

    async def installation_status(self) -> InstallationStatus:
        await self._read()
        return self.status

    async def close(self) -> None:
        self.closed = True


def settings(**options: Any) -> WebSettings:
    options.setdefault("enable_api", False)
    return WebSettings(database_url="postgresql://kiln@db/kiln", **options)


@pytest.fixture
def fake() -> FakeStatus:
    return FakeStatus()


@pytest.fixture
def client(fake: FakeStatus) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(settings(), fake)) as test_client:
        yield test_client


def scrape(client: TestClient[Litestar], path: str = "/metrics") -> list[Sample]:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = list(text_string_to_metric_families(response.text))
    for family in families:
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type != "unknown", f"{family.name} has no TYPE"
    return [sample for family in families for sample in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float | None:
    matching = [s.value for s in found if s.name == name and labels.items() <= s.labels.items()]
    return sum(matching) if matching else None


# --- /healthz ---------------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(
    client: TestClient[Litestar], fake: FakeStatus
) -> None:
    fake.error = DatabaseUnavailable("down")
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    head = client.head("/healthz")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == response.headers["content-length"]
    assert fake.reads == 0


# --- /readyz ----------------------------------------------------------------------------------


def test_readyz_is_200_with_a_current_schema_and_a_live_worker(
    client: TestClient[Litestar],
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert list(body["checks"]) == ["database", "schema", "workers"]
    assert all(check["ok"] for check in body["checks"].values())
    assert "1 queue worker(s) sent a heartbeat" in body["checks"]["workers"]["message"]


def test_readyz_is_503_when_the_database_is_down(
    client: TestClient[Litestar], fake: FakeStatus
) -> None:
    fake.error = DatabaseUnavailable("cannot connect to the database db: connection refused")
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "connection refused" in body["checks"]["database"]["message"]
    assert "CondaStore.database_url" in body["checks"]["database"]["message"]
    assert body["checks"]["schema"] == {
        "ok": False,
        "message": "not checked: the database check failed",
    }
    assert body["message"].startswith("Kiln is not ready: database:")


def test_readyz_gives_up_on_a_database_that_does_not_answer(fake: FakeStatus) -> None:
    fake.delay = 5
    with TestClient(create_app(settings(database_timeout=0.2), fake)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "did not answer within 0.2 s" in response.json()["checks"]["database"]["message"]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (ReadinessFacts(schema(revision=None, queue=False), None), "job queue"),
        (ReadinessFacts(schema(revision="0000"), None), "newer than this Kiln"),
    ],
    ids=["queue-schema-missing", "migrated-by-a-newer-kiln"],
)
def test_readyz_is_503_when_the_schema_is_not_current(
    client: TestClient[Litestar], fake: FakeStatus, facts: ReadinessFacts, expected: str
) -> None:
    fake.facts = facts
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"]
    assert not checks["schema"]["ok"]
    assert expected in checks["schema"]["message"]
    assert checks["workers"]["message"] == "not checked: the schema check failed"


def test_readyz_says_to_run_kiln_migrate_on_an_empty_database(
    client: TestClient[Litestar], fake: FakeStatus
) -> None:
    empty = SchemaStatus("db", None, code_revision(), queue_schema_present=False)
    fake.facts = ReadinessFacts(empty, None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "run `kiln migrate`" in response.json()["checks"]["schema"]["message"]


def test_readyz_is_503_without_a_worker(client: TestClient[Litestar], fake: FakeStatus) -> None:
    fake.facts = ReadinessFacts(schema(), [])
    response = client.get("/readyz")
    assert response.status_code == 503
    message = response.json()["checks"]["workers"]["message"]
    assert message.startswith("no worker is running")
    assert "kiln worker" in message


def test_readyz_is_503_when_every_heartbeat_is_older_than_the_timeout(fake: FakeStatus) -> None:
    fake.facts = ReadinessFacts(schema(), [worker(1, 31.0), worker(2, 3600.0)])
    with TestClient(create_app(settings(heartbeat_timeout=30), fake)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        message = response.json()["checks"]["workers"]["message"]
        assert "no worker sent a heartbeat within 30 s (the newest 31 s ago)" in message

        fake.facts = ReadinessFacts(schema(), [worker(1, 29.0), worker(2, 3600.0)])
        assert client.get("/readyz").status_code == 200


def test_head_readyz_has_get_s_status_and_headers_without_a_body(
    client: TestClient[Litestar], fake: FakeStatus
) -> None:
    for facts, status in [(fake.facts, 200), (ReadinessFacts(schema(), []), 503)]:
        fake.facts = facts
        got = client.get("/readyz")
        head = client.head("/readyz")
        assert (got.status_code, head.status_code) == (status, status)
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == "application/json"


# --- url_prefix, routes, OpenAPI --------------------------------------------------------------


def test_probes_and_metrics_answer_under_the_prefix_and_at_the_root(fake: FakeStatus) -> None:
    with TestClient(create_app(settings(url_prefix="/kiln"), fake)) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(f"/kiln{path}").status_code == 200, path
            assert client.get(path).status_code == 200, path
        paths = client.get("/kiln/openapi.json").json()["paths"]
    assert set(paths) == {"/kiln/healthz", "/kiln/readyz", "/kiln/metrics"}


def test_route_handlers_are_served_under_the_prefix(fake: FakeStatus) -> None:
    @get("/hello", operation_id="getHello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    with TestClient(create_app(settings(url_prefix="/kiln"), fake, route_handlers=[hello])) as c:
        assert c.get("/kiln/hello").json() == {"hello": "world"}
        assert c.get("/hello").status_code == 404


def test_every_route_has_a_unique_operation_id(fake: FakeStatus) -> None:
    app = create_app(settings(url_prefix="/kiln"), fake)
    operations = [
        operation
        for item in app.openapi_schema.to_schema()["paths"].values()
        for method, operation in item.items()
        if method in ("get", "head", "post", "put", "patch", "delete")
    ]
    ids = [operation.get("operationId") for operation in operations]
    assert len(ids) == 5  # (healthz, readyz) x (GET, HEAD) + metrics, under /kiln
    assert all(isinstance(operation_id, str) and operation_id for operation_id in ids)
    assert len(set(ids)) == len(ids)


def test_metrics_can_be_switched_off(fake: FakeStatus) -> None:
    with TestClient(create_app(settings(enable_metrics=False), fake)) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_the_app_closes_its_status_source_at_shutdown(fake: FakeStatus) -> None:
    with TestClient(create_app(settings(), fake)):
        assert not fake.closed
    assert fake.closed


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_report_the_database_s_facts(fake: FakeStatus, tmp_path: Any) -> None:
    fake.status = InstallationStatus(
        builds={"COMPLETED": 4, "FAILED": 1},
        jobs={("builds", "todo"): 3, ("builds", "doing"): 1},
        workers=[worker(7, 1.5), worker(8, 400.0)],
        storage=[
            StoreSample(
                host="builder-1",
                path="/srv/kiln/store",
                sampled_on=NOW,
                age_seconds=42.0,
                disk_total=1000,
                disk_used=600,
                disk_free=400,
                store_size=550,
            )
        ],
    )
    with TestClient(create_app(settings(store_directory=str(tmp_path)), fake)) as client:
        found = scrape(client)
    assert value(found, "kiln_database_up") == 1
    assert value(found, "kiln_builds", status="COMPLETED") == 4
    assert value(found, "kiln_builds", status="QUEUED") == 0
    assert value(found, "kiln_queue_jobs", queue="builds", status="todo") == 3
    assert value(found, "kiln_queue_jobs", queue="builds", status="failed") == 0
    assert value(found, "kiln_workers", state="live") == 1
    assert value(found, "kiln_workers", state="stalled") == 1
    assert value(found, "kiln_worker_heartbeat_age_seconds", worker="8") == 400
    store = {"host": "builder-1", "path": "/srv/kiln/store"}
    assert value(found, "kiln_store_filesystem_free_bytes", **store) == 400
    assert value(found, "kiln_store_size_bytes", **store) == 550
    assert value(found, "kiln_store_sample_age_seconds", **store) == 42
    # This host's store directory has no sample: measured for the scrape.
    here = {"path": str(tmp_path)}
    assert (value(found, "kiln_store_filesystem_size_bytes", **here) or 0) > 0
    assert value(found, "kiln_store_sample_age_seconds", **here) == 0


def test_metrics_still_answer_when_the_database_is_down(
    client: TestClient[Litestar], fake: FakeStatus, caplog: pytest.LogCaptureFixture
) -> None:
    fake.error = DatabaseUnavailable("cannot connect to the database db: connection refused")
    found = scrape(client)
    assert value(found, "kiln_database_up") == 0
    assert value(found, "kiln_builds") is None
    assert value(found, "kiln_info") == 1
    assert "connection refused" in caplog.text


def test_requests_are_counted_by_route_template_and_status(fake: FakeStatus) -> None:
    @get("/things/{thing_id:int}", operation_id="getThing")
    async def thing(thing_id: FromPath[int], size: FromQuery[int] = 1) -> dict[str, int]:
        return {"id": thing_id, "size": size}

    with TestClient(create_app(settings(), fake, route_handlers=[thing])) as client:
        before = scrape(client)
        for number in range(3):
            assert client.get(f"/things/{number}").status_code == 200
        assert client.get("/things/1?size=big").status_code == 400
        assert client.get("/no/such/route").status_code == 404
        assert client.delete("/healthz").status_code == 405
        after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    template = "/things/{thing_id}"
    assert delta("kiln_http_requests_total", route=template, status="200") == 3
    assert delta("kiln_http_requests_total", route=template, status="400") == 1
    assert delta("kiln_http_request_duration_seconds_count", route=template) == 4
    assert delta("kiln_http_requests_total", route="<unmatched>", status="404") == 1
    assert delta("kiln_http_requests_total", route="<unmatched>", status="405") == 1
    assert not [sample for sample in after if "/things/1" in sample.labels.values()]


def test_openmetrics_is_served_when_asked_for(client: TestClient[Litestar]) -> None:
    response = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# --- errors -----------------------------------------------------------------------------------


class EnvironmentNotFound(KilnError):
    """No such environment."""

    code = "environment_not_found"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SpecificationError("dependencies[0]: 'numpy>>1' is not a valid spec"), 400),
        (ArtifactNotFound("no lockfile for build 3"), 404),
        (EnvironmentNotFound(), 404),
        (StorageError("the bucket kiln does not exist"), 503),
        (DatabaseUnavailable("cannot connect"), 503),
        (KilnError("something the user did"), 400),
    ],
    ids=lambda item: type(item).__name__ if isinstance(item, Exception) else str(item),
)
def test_domain_errors_become_conda_store_error_envelopes(
    fake: FakeStatus, error: KilnError, status: int
) -> None:
    @get("/fail", operation_id="getFail")
    async def fail() -> None:
        raise error

    assert status_of(error) == status
    with TestClient(create_app(settings(), fake, route_handlers=[fail])) as client:
        response = client.get("/fail")
    assert response.status_code == status
    assert response.json() == {"status": "error", "message": error.message, "code": error.code}


def test_unexpected_errors_are_logged_and_answered_without_details(
    fake: FakeStatus, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/crash", operation_id="getCrash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    with (
        caplog.at_level(logging.ERROR, logger="kiln.web"),
        TestClient(create_app(settings(), fake, route_handlers=[crash])) as client,
    ):
        response = client.get("/crash")
    assert response.status_code == 500
    assert response.json()["code"] == "internal"
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text


def test_http_errors_use_the_same_envelope(client: TestClient[Litestar]) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["status"] == "error"
    assert "GET" in response.headers["allow"]


def test_the_api_reference_is_served_without_a_cdn(fake: FakeStatus) -> None:
    with TestClient(create_app(settings(url_prefix="/kiln"), fake)) as client:
        page = client.get("/kiln/docs")
        document = client.get("/kiln/openapi.json")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/kiln/readyz" in page.text and "getReadiness" in page.text
    assert "<script" not in page.text
    assert document.json()["info"]["title"] == "Kiln"


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        (b"page=2/", b"page=2"),
        (b"status=COMPLETED&packages=numpy/", b"status=COMPLETED&packages=numpy"),
        (b"packages=numpy%2F", b"packages=numpy"),
        (b"next=/api/v1/namespace/", b"next=/api/v1/namespace/"),
        (b"next=%2Fapi%2Fv1%2F", b"next=%2Fapi%2Fv1%2F"),
        (b"page=2", b"page=2"),
        (b"", b""),
    ],
)
def test_the_conda_store_client_s_trailing_slash_is_dropped_from_plain_values(
    sent: bytes, read: bytes
) -> None:
    assert without_client_slash(sent) == read

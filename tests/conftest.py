"""Shared fixtures for Kiln's test suite.

Tiers: ``tests/unit`` (no services), ``tests/integration`` (real services the fixtures start:
the SeaweedFS S3 server), ``tests/e2e`` (the real ``kiln`` CLI and the frozen binary as
subprocesses).

Fixtures:

``demo_channel`` (session)
    A real conda channel written by ``kiln channel demo`` code, indexed, read-only by convention.
``build_settings`` (function)
    :class:`~appliance.builder.settings.BuildSettings` rooted in a fresh temporary data dir,
    with the demo channel allowed.
``local_storage`` (function)
    A :class:`~appliance.storage.LocalArtifactStore` in that data dir.
``builder`` (function)
    A :class:`~appliance.builder.pipeline.Builder` over those settings and storage.
``s3_server`` / ``s3_bucket``
    A real S3 server (SeaweedFS ``weed mini``); see :mod:`tests.fixtures.s3`.
``postgres_server`` / ``template_database`` / ``database`` / ``database_url`` / ...
    Kiln's managed PostgreSQL, a template database, a clone per test; see tests.fixtures.postgres.
``db_engine`` / ``db_sessions`` / ``db_session`` / ``unmigrated_database``
    SQLAlchemy on that migrated clone, and an empty database; see tests.fixtures.db.
``worker_context``
    A worker's context on that database, build settings and storage; tests.fixtures.worker
    also holds the helpers that submit builds and run workers (in this process or as
    ``kiln worker``).
``kiln_config`` / ``api_context`` / ``api`` / ``callers``
    The REST API on that database, a client, and tokens with chosen rights; see
    tests.fixtures.api.
``oauth_provider``
    A small OAuth 2 provider on 127.0.0.1 (generic and GitHub paths); see tests.fixtures.oauth.
``chromium`` / ``browser`` / ``page`` / ``live_kiln`` / ``live_kiln_worker``
    Debian's headless Chromium driven by Playwright, a fresh page per test (a screenshot and the
    HTML of a failing test's page land in ``test-artifacts/``), and the real web app served by
    ``kiln web`` on the test database (with a worker when asked); see tests.fixtures.browser.
    Browser tests are marked ``browser``.

py-rattler can crash the interpreter while it tears down after the last test (NOTES.md). The
suite's verdict must not depend on that, so pytest leaves through ``os._exit`` with the exit
status it computed, after every report has been written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.build",
    "tests.fixtures.postgres",
    "tests.fixtures.db",
    "tests.fixtures.worker",
    "tests.fixtures.api",
    "tests.fixtures.oauth",
    "tests.fixtures.browser",
    "tests.fixtures.ui",
]

_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _exit_status or os.environ.get("KILN_TEST_NORMAL_EXIT"):
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(_exit_status[0])


@pytest.fixture(scope="session")
def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent

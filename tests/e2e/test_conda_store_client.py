"""Proof of compatibility: the official ``conda-store`` 2025.2.2 client against a live Kiln.

The client is installed from PyPI into its own virtual environment
(``.cache/conda-store-client-2025.2.2``, ignored by git, rebuilt when incomplete or broken) and
run as users run it: ``conda-store --conda-store-url URL --auth token COMMAND`` with
``CONDA_STORE_TOKEN`` set, against ``kiln serve`` on a fresh data dir (managed PostgreSQL, one
web process, one worker, the demo channel as the only channel). The environment under test is
created through the client's Python API (``CondaStoreAPI.create_environment``, what the
JupyterHub spawner integrations call), then every CLI command is checked on its own.

What the client sends and reads (read from its source, ``conda_store/api.py``,
``_internal/{cli,auth,utils,runner}.py``; aiohttp session, redirects followed, every URL passed
through ``utils.ensure_slash``, which appends ``/`` to the *whole* URL string, query included):

Authentication (``--auth``, env ``CONDA_STORE_AUTH``; ``--conda-store-url`` includes the prefix):
  - ``none``: no credentials.
  - ``token``: every request carries ``Authorization: Bearer $CONDA_STORE_TOKEN``.
  - ``basic``: ``POST <url>/login/`` JSON ``{"username", "password"}`` from
    ``CONDA_STORE_USERNAME``/``CONDA_STORE_PASSWORD``; any 4xx/5xx raises (traceback, not a
    message); later requests rely on the cookie alone, no Origin/Referer/CSRF header is sent.
    aiohttp's cookie jar refuses cookies from IP-address hosts, so this only works with a host
    name URL (``http://localhost:PORT``), never ``http://127.0.0.1:PORT``.

Commands and the Python API:
  - ``info``: ``GET /api/v1/permission/``; reads ``data.primary_namespace``,
    ``data.authenticated``, ``data.entity_permissions`` (each key split on ``/`` into exactly
    two parts: a key without one crashes; values joined as strings).
  - ``token [--namespace NS] [--expiration SECONDS] [--permission ARN:role,role]...``:
    ``GET /api/v1/permission/`` (reads ``primary_namespace``, ``entity_roles``, ``expiration``),
    then ``POST /api/v1/token/`` JSON ``{"primary_namespace", "role_bindings", "exp"}``:
    ``exp`` not ``expiration`` [client bug]; without ``--expiration`` it echoes the permission
    response's ``expiration`` string, with it ``str(datetime)`` (``2026-01-01 12:00:00.123456
    +00:00``, a space, not ISO ``T``); without ``--permission`` ``role_bindings`` is the
    caller's ``entity_roles``. Reads ``data.token``; on 400 prints ``message`` and exits 1; any
    other error status crashes with ``KeyError: 'data'``.
  - ``list namespace``: ``GET /api/v1/namespace/``, then ``GET /api/v1/namespace/?page=N/`` for
    N in 2..ceil(count/size) [client bug: ``page`` arrives as ``"2/"``]; reads ``count``,
    ``size`` (0 crashes), ``data[].id``, ``data[].name``.
  - ``list build [--status S] [--artifact A] [--package P]...``: ``GET /api/v1/build/`` without
    filters; with filters ``GET /api/v1/build?status=S&artifact=A&packages=P1&packages=P2/``
    [client bug: no slash after the path, and the *last* query value carries a trailing ``/``];
    pages as above. Reads ``count``, ``size``, ``data[].id``, ``data[].status``,
    ``data[].size`` (must be a number: ``null`` crashes ``sizeof_fmt``).
  - ``list environment [--status] [--artifact] [--package]...``: ``GET /api/v1/environment/``
    (filters as for builds, same trailing-``/`` bug), then re-requests the *same URL* until
    ``len(data) == count`` [client bug: endless loop when there is more than one page]. Reads
    ``data[].id``, ``data[].namespace.id``, ``data[].name``.
  - ``CondaStoreAPI.create_environment(ns, text)``: ``POST /api/v1/specification/`` JSON
    ``{"namespace", "specification": <YAML text>}``; needs status **200** (201 counts as an
    error); reads ``data.build_id``, on error ``message``. The namespace may not exist yet.
  - ``CondaStoreAPI.create_namespace``/``delete_namespace``: ``POST``/``DELETE
    /api/v1/namespace/NS/``, need status **200** (not 201/204). ``delete_environment``:
    ``DELETE /api/v1/environment/NS/NAME/``, needs 200.
  - URIs of ``download``/``wait``/``run``: ``ID``; ``NS/NAME`` (``GET
    /api/v1/environment/NS/NAME/``, needs 200, reads ``data.current_build_id``); ``NS/NAME:ID``
    (``GET /api/v1/build/ID/`` then the environment; compares ``build.environment_id`` with
    ``environment.id``).
  - ``wait URI [--timeout 600] [--interval 10] [--artifact build|lockfile|yaml|archive|docker]``:
    polls ``GET /api/v1/build/ID/`` (needs 200); reads ``data.status`` (COMPLETED: exit 0,
    FAILED: "Build N failed", exit 1; CANCELED is not handled [client bug]: waits until the
    timeout) and ``data.build_artifacts[].artifact_type`` (LOCKFILE, YAML, CONDA_PACK,
    DOCKER_MANIFEST).
  - ``download URI [--artifact logs|yaml|lockfile|archive] [--output-filename F]``:
    ``GET /api/v1/build/ID/{logs,yaml,lockfile,archive}/``, redirects followed (aiohttp keeps
    ``Authorization`` on same-origin redirects only), needs a final 200; writes the raw body.
    Default names ``build-ID.lock|yaml|tar.gz``; ``--artifact logs`` without
    ``--output-filename`` crashes (``UnboundLocalError``) [client bug].
  - ``run URI [CMD...]``: downloads the ``archive`` as above, extracts it with ``tarfile``
    (``r:gz``), runs ``bin/conda-unpack``, then ``bash -c ". bin/activate PREFIX && exec CMD"``.
  - ``solve FILE [--output table|json]``: ``GET /api/v1/specification?channels=C&conda=S1&
    conda=S2&pip=P/`` (``channels``, not the ``channel`` conda-store reads [client bug]; empty
    lists are left out; no slash after the path; the *last* value carries a trailing ``/``).
    Reads the top-level ``solve`` list (no envelope); each item's ``size`` (a number, summed),
    and for the table ``name``, ``version``, ``channel_id``.

Where the client misbehaves, Kiln accepts what it actually sends (issue 4); the tests below use
the commands the way their ``--help`` documents them, bugs included.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.kiln import REPOSITORY, ServedKiln, served_kiln

pytestmark = pytest.mark.conda_store_client

CLIENT_VERSION = "2025.2.2"
#: The client's virtual environment, kept between runs (``.cache/`` is ignored by git).
CLIENT_VENV = REPOSITORY / ".cache" / f"conda-store-client-{CLIENT_VERSION}"
#: Written last into :data:`CLIENT_VENV`: the venv is complete and for this interpreter.
STAMP = "kiln-complete.json"

NAMESPACE = "compat"
ENVIRONMENT = "proof"
#: Bounds on waiting for the server (a demo build takes a few seconds).
BUILD_TIMEOUT = 180
COMMAND_TIMEOUT = 90


# ---------------------------------------------------------------------------------------------
# The client's virtual environment


def _stamp() -> dict[str, str]:
    return {"client": CLIENT_VERSION, "python": sys.version, "base": sys.base_prefix}


def _venv_is_complete(venv: Path) -> bool:
    try:
        if json.loads((venv / STAMP).read_text()) != _stamp():
            return False
    except (OSError, ValueError):
        return False
    version = subprocess.run(
        [venv / "bin" / "conda-store", "--version"], capture_output=True, text=True, timeout=60
    )
    return version.returncode == 0 and CLIENT_VERSION in version.stdout


def _build_venv(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
            "--quiet", f"conda-store=={CLIENT_VERSION}",
        ],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.fail(
                f"could not install conda-store=={CLIENT_VERSION} from PyPI into {venv} "
                f"({' '.join(step[:4])} ...):\n{done.stdout}{done.stderr}"
            )
    (venv / STAMP).write_text(json.dumps(_stamp()))


@pytest.fixture(scope="session")
def client_venv() -> Path:
    """The client's venv: reused when complete, else (re)built under a lock, so that an
    interrupted install or a changed interpreter never leaves a venv that looks usable."""
    CLIENT_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(CLIENT_VENV.with_name(CLIENT_VENV.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _venv_is_complete(CLIENT_VENV):
            _build_venv(CLIENT_VENV)
    return CLIENT_VENV


# ---------------------------------------------------------------------------------------------
# A live Kiln and a way to run the client against it


@pytest.fixture(scope="module")
def live_kiln(demo_channel: Path) -> Iterator[ServedKiln]:
    with served_kiln(demo_channel, prefix="kiln-client-test-") as served:
        yield served


@pytest.fixture(scope="module")
def admin_token(live_kiln: ServedKiln) -> str:
    return live_kiln.mint_token()


@dataclass(frozen=True)
class Client:
    """The installed ``conda-store`` command and Python, pointed at the live Kiln."""

    venv: Path
    kiln: ServedKiln
    token: str

    def environment(self, token: str | None, **extra: str) -> dict[str, str]:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("CONDA_STORE_")
        }
        environment.update(COLUMNS="200", NO_COLOR="1", TERM="dumb", **extra)
        if token is not None:
            environment["CONDA_STORE_TOKEN"] = token
        return environment

    def run(
        self,
        *args: str | Path,
        auth: str = "token",
        token: str | None = None,
        url: str | None = None,
        cwd: Path | None = None,
        timeout: float = COMMAND_TIMEOUT,
        **environment: str,
    ) -> subprocess.CompletedProcess[str]:
        """``conda-store --conda-store-url URL --auth AUTH ARGS`` (the admin token unless
        ``token`` is given)."""
        command = [
            str(self.venv / "bin" / "conda-store"),
            "--conda-store-url", url or self.kiln.url, "--auth", auth, *map(str, args),
        ]  # fmt: skip
        return subprocess.run(
            command,
            env=self.environment(token or self.token, **environment),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python_api(self, call: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Call ``CondaStoreAPI.<call>(*args)`` with token auth in the client's venv; the
        result is printed as JSON on the last line."""
        script = (
            "import asyncio, json, sys\n"
            "from conda_store.api import CondaStoreAPI\n"
            "async def main(url, call, *args):\n"
            "    async with CondaStoreAPI(url, auth_type='token') as api:\n"
            "        print(json.dumps(await getattr(api, call)(*args)))\n"
            "asyncio.run(main(*sys.argv[1:]))\n"
        )
        return subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", script, self.kiln.url, call, *args],
            env=self.environment(self.token),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )


@pytest.fixture(scope="module")
def client(client_venv: Path, live_kiln: ServedKiln, admin_token: str) -> Client:
    return Client(client_venv, live_kiln, admin_token)


def explain(done: subprocess.CompletedProcess[str], server: ServedKiln | None = None) -> str:
    """A failure message: what the client printed (and what the server logged last)."""
    stderr = done.stderr
    if "Traceback (most recent call last)" in stderr:  # the client crashed: its last words
        stderr = "(traceback trimmed)\n" + "\n".join(stderr.rstrip().splitlines()[-4:])
    message = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{stderr}"
    if server is not None:
        logged = [line for line in server.output(200).splitlines() if "procrastinate" not in line]
        message += "\n--- kiln serve (last lines)\n" + "\n".join(logged[-20:])
    return message


def api_get(server: ServedKiln, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def claims_of(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def wait_for_final_status(server: ServedKiln, token: str, build_id: int) -> dict[str, Any]:
    """The build's detail once it is no longer QUEUED or BUILDING (bounded)."""
    deadline = time.monotonic() + BUILD_TIMEOUT
    while True:
        response = api_get(server, token, f"/api/v1/build/{build_id}/")
        assert response.status_code == 200, f"GET /api/v1/build/{build_id}/: {response.text}"
        build: dict[str, Any] = response.json()["data"]
        if build["status"] not in ("QUEUED", "BUILDING"):
            return build
        if time.monotonic() > deadline:
            pytest.fail(f"build {build_id} still {build['status']} after {BUILD_TIMEOUT}s")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# The environment under test


SPECIFICATION = f"name: {ENVIRONMENT}\ndependencies:\n  - kiln-demo-tool\n"
DEMO_PACKAGES = {"kiln-demo-tool", "kiln-demo-lib", "kiln-demo-data"}


@pytest.fixture(scope="module")
def submitted_build(client: Client) -> int:
    """``CondaStoreAPI.create_environment`` in a namespace that does not exist yet."""
    created = client.python_api("create_environment", NAMESPACE, SPECIFICATION)
    assert created.returncode == 0, explain(created, client.kiln)
    build_id = json.loads(created.stdout.strip().splitlines()[-1])
    assert isinstance(build_id, int), created.stdout
    return build_id


@pytest.fixture(scope="module")
def completed_build(client: Client, submitted_build: int) -> int:
    build = wait_for_final_status(client.kiln, client.token, submitted_build)
    assert build["status"] == "COMPLETED", build
    return submitted_build


# ---------------------------------------------------------------------------------------------
# info and token


def test_info_shows_the_primary_namespace_and_permissions_of_the_token(client: Client) -> None:
    done = client.run("info")
    assert done.returncode == 0, explain(done)
    assert "Default namespace is default" in done.stdout
    assert "Authenticated True" in done.stdout
    row = next(line for line in done.stdout.splitlines() if "environment::read" in line)
    assert [cell.strip() for cell in row.split("│")[1:3]] == ["*", "*"], done.stdout
    for permission in ("environment::create", "namespace::delete", "setting::update"):
        assert permission in done.stdout


def test_info_without_credentials_is_anonymous_with_no_rights(client: Client) -> None:
    done = client.run("info", auth="none")
    assert done.returncode == 0, explain(done)
    assert "Authenticated False" in done.stdout
    assert "environment::read" not in done.stdout


def test_token_mints_a_working_token_with_the_callers_rights(client: Client) -> None:
    done = client.run("token")
    assert done.returncode == 0, explain(done)
    token = done.stdout.strip()
    assert claims_of(token)["role_bindings"] == {"*/*": ["admin"]}
    info = client.run("info", token=token)
    assert info.returncode == 0 and "namespace::delete" in info.stdout, explain(info)


def test_token_with_permission_narrows_the_new_token(client: Client) -> None:
    done = client.run("token", "--permission", "default/*:viewer", "--namespace", "default")
    assert done.returncode == 0, explain(done)
    token = done.stdout.strip()
    assert claims_of(token)["role_bindings"] == {"default/*": ["viewer"]}
    info = client.run("info", token=token)
    assert info.returncode == 0, explain(info)
    assert "environment::read" in info.stdout
    assert "environment::create" not in info.stdout
    assert "namespace::delete" not in info.stdout


def test_token_with_expiration_gets_that_lifetime(client: Client) -> None:
    """The client sends ``exp`` (not ``expiration``) as ``str(datetime)``: Kiln honours it."""
    done = client.run("token", "--expiration", "3600")
    assert done.returncode == 0, explain(done)
    expires = claims_of(done.stdout.strip())["exp"]
    assert abs(expires - (datetime.now(UTC).timestamp() + 3600)) < 120


def test_token_asking_for_more_than_the_caller_has_is_refused_with_the_reason(
    client: Client,
) -> None:
    viewer = client.run("token", "--permission", "default/*:viewer").stdout.strip()
    done = client.run("token", "--permission", "*/*:admin", token=viewer)
    assert done.returncode == 1, explain(done)
    assert "Traceback" not in done.stderr, explain(done)  # a 400 with a message, not a crash
    assert done.stderr.strip(), explain(done)


def test_token_without_credentials_is_refused_with_the_reason(client: Client) -> None:
    """Anonymous callers cannot mint tokens in Kiln; the client reads ``message`` only from a
    400, so any other refusal status makes it crash instead of saying why."""
    done = client.run("token", auth="none")
    assert done.returncode == 1, explain(done)
    assert "Traceback" not in done.stderr, explain(done)
    assert "log in" in done.stderr, explain(done)


# ---------------------------------------------------------------------------------------------
# The Python API's namespace and environment calls


def test_python_api_creates_and_deletes_a_namespace(client: Client) -> None:
    created = client.python_api("create_namespace", "scratch")
    assert created.returncode == 0, explain(created, client.kiln)
    listed = client.run("list", "namespace", "--output", "json")
    assert "scratch" in {ns["name"] for ns in json.loads(listed.stdout)}, explain(listed)
    deleted = client.python_api("delete_namespace", "scratch")
    assert deleted.returncode == 0, explain(deleted, client.kiln)
    listed = client.run("list", "namespace", "--output", "json")
    assert "scratch" not in {ns["name"] for ns in json.loads(listed.stdout)}, explain(listed)


def test_python_api_create_environment_queues_a_build_of_the_environment(
    client: Client, submitted_build: int
) -> None:
    fetched = client.python_api("get_build", str(submitted_build))
    assert fetched.returncode == 0, explain(fetched, client.kiln)
    build = json.loads(fetched.stdout.strip().splitlines()[-1])
    assert build["id"] == submitted_build
    environment = client.python_api("get_environment", NAMESPACE, ENVIRONMENT)
    assert environment.returncode == 0, explain(environment, client.kiln)
    assert json.loads(environment.stdout.strip().splitlines()[-1])["id"] == build["environment_id"]


# ---------------------------------------------------------------------------------------------
# wait


def test_wait_right_after_creating_an_environment_returns_once_its_build_completed(
    client: Client,
) -> None:
    """``wait NS/NAME`` reads the environment's ``current_build_id`` at once: conda-store sets
    it when the first build is queued, so a fresh environment can be waited for by name."""
    spec = "name: waited\ndependencies:\n  - kiln-demo-tool\n"
    created = client.python_api("create_environment", NAMESPACE, spec)
    assert created.returncode == 0, explain(created, client.kiln)
    build_id = json.loads(created.stdout.strip().splitlines()[-1])
    done = client.run(
        "wait", f"{NAMESPACE}/waited", "--timeout", str(BUILD_TIMEOUT), "--interval", "1",
        timeout=BUILD_TIMEOUT + 30,
    )  # fmt: skip
    assert done.returncode == 0, explain(done, client.kiln)
    status = api_get(client.kiln, client.token, f"/api/v1/build/{build_id}/")
    assert status.json()["data"]["status"] == "COMPLETED"


@pytest.mark.parametrize("artifact", ["lockfile", "yaml", "archive"])
def test_wait_for_an_artifact_of_a_build(
    client: Client, completed_build: int, artifact: str
) -> None:
    uri = f"{NAMESPACE}/{ENVIRONMENT}:{completed_build}"
    done = client.run("wait", uri, "--artifact", artifact, "--timeout", "30", "--interval", "1")
    assert done.returncode == 0, explain(done, client.kiln)


def test_wait_reports_a_failed_build(client: Client) -> None:
    spec = "name: unsolvable\ndependencies:\n  - kiln-demo-no-such-package\n"
    created = client.python_api("create_environment", NAMESPACE, spec)
    assert created.returncode == 0, explain(created, client.kiln)
    build_id = json.loads(created.stdout.strip().splitlines()[-1])
    done = client.run(
        "wait", str(build_id), "--timeout", str(BUILD_TIMEOUT), "--interval", "1",
        timeout=BUILD_TIMEOUT + 30,
    )  # fmt: skip
    assert done.returncode == 1, explain(done, client.kiln)
    assert f"Build {build_id} failed" in done.stderr


# ---------------------------------------------------------------------------------------------
# list


def test_list_namespace_shows_the_namespace_created_with_the_environment(
    client: Client, submitted_build: int
) -> None:
    done = client.run("list", "namespace", "--output", "json")
    assert done.returncode == 0, explain(done)
    namespaces = json.loads(done.stdout)
    assert NAMESPACE in {namespace["name"] for namespace in namespaces}
    assert all(isinstance(namespace["id"], int) for namespace in namespaces)
    table = client.run("list", "namespace")
    assert table.returncode == 0 and NAMESPACE in table.stdout, explain(table)


def test_list_environment_shows_the_environment(client: Client, completed_build: int) -> None:
    done = client.run("list", "environment", "--output", "json")
    assert done.returncode == 0, explain(done)
    environments = json.loads(done.stdout)
    ours = [env for env in environments if env["name"] == ENVIRONMENT]
    assert len(ours) == 1, environments
    assert isinstance(ours[0]["namespace"]["id"], int)
    table = client.run("list", "environment")  # the table reads namespace.id
    assert table.returncode == 0 and ENVIRONMENT in table.stdout, explain(table)


def test_list_environment_filtered_by_status_and_package(
    client: Client, completed_build: int
) -> None:
    done = client.run(
        "list", "environment", "--status", "COMPLETED", "--package", "kiln-demo-tool",
        "--output", "json",
    )  # fmt: skip
    assert done.returncode == 0, explain(done, client.kiln)
    assert ENVIRONMENT in {env["name"] for env in json.loads(done.stdout)}


def test_list_build_shows_the_build_with_its_status_and_size(
    client: Client, completed_build: int
) -> None:
    done = client.run("list", "build", "--output", "json")
    assert done.returncode == 0, explain(done)
    builds = {build["id"]: build for build in json.loads(done.stdout)}
    assert builds[completed_build]["status"] == "COMPLETED"
    assert builds[completed_build]["size"].endswith("B")  # formatted from a number by the client
    table = client.run("list", "build")
    assert table.returncode == 0 and "COMPLETED" in table.stdout, explain(table)


def test_list_build_filtered_by_status(client: Client, completed_build: int) -> None:
    """The client asks for ``/api/v1/build?status=COMPLETED/`` (its trailing-slash bug)."""
    done = client.run("list", "build", "--status", "COMPLETED", "--output", "json")
    assert done.returncode == 0, explain(done, client.kiln)
    builds = json.loads(done.stdout)
    assert completed_build in {build["id"] for build in builds}
    assert {build["status"] for build in builds} == {"COMPLETED"}


def test_list_build_filtered_by_artifact_and_package(client: Client, completed_build: int) -> None:
    done = client.run(
        "list", "build", "--artifact", "LOCKFILE", "--package", "kiln-demo-lib",
        "--output", "json",
    )  # fmt: skip
    assert done.returncode == 0, explain(done, client.kiln)
    assert completed_build in {build["id"] for build in json.loads(done.stdout)}


def test_list_namespace_reads_every_page(client: Client, submitted_build: int) -> None:
    """With more namespaces than a page holds the client asks for ``?page=2/`` (its
    trailing-slash bug) and must get page 2."""
    headers = {"Authorization": f"Bearer {client.token}"}
    with httpx.Client(base_url=client.kiln.url, headers=headers, timeout=30) as api:
        for number in range(105):
            created = api.post(f"/api/v1/namespace/many-{number:03d}/")
            assert created.status_code in (200, 409), created.text
    done = client.run("list", "namespace", "--output", "json")
    assert done.returncode == 0, explain(done, client.kiln)
    names = [namespace["name"] for namespace in json.loads(done.stdout)]
    assert len(names) == len(set(names))
    assert {f"many-{number:03d}" for number in range(105)} | {NAMESPACE} <= set(names)


# ---------------------------------------------------------------------------------------------
# download


def test_download_lockfile_of_the_current_build(
    client: Client, completed_build: int, tmp_path: Path
) -> None:
    done = client.run("download", f"{NAMESPACE}/{ENVIRONMENT}", cwd=tmp_path)
    assert done.returncode == 0, explain(done, client.kiln)
    path = Path(done.stdout.strip())
    assert path == tmp_path / f"build-{completed_build}.lock"
    lockfile = yaml.safe_load(path.read_text())
    assert lockfile["version"] == 1
    assert {package["name"] for package in lockfile["package"]} == DEMO_PACKAGES
    assert {package["manager"] for package in lockfile["package"]} == {"conda"}


def test_download_yaml_of_a_build(client: Client, completed_build: int, tmp_path: Path) -> None:
    done = client.run("download", str(completed_build), "--artifact", "yaml", cwd=tmp_path)
    assert done.returncode == 0, explain(done, client.kiln)
    exported = yaml.safe_load(Path(done.stdout.strip()).read_text())
    assert exported["name"] == ENVIRONMENT
    pinned = {str(dependency).split("=")[0] for dependency in exported["dependencies"]}
    assert pinned == DEMO_PACKAGES


def test_download_archive_is_a_conda_pack_tarball(
    client: Client, completed_build: int, tmp_path: Path
) -> None:
    uri = f"{NAMESPACE}/{ENVIRONMENT}:{completed_build}"
    done = client.run("download", uri, "--artifact", "archive", cwd=tmp_path)
    assert done.returncode == 0, explain(done, client.kiln)
    path = Path(done.stdout.strip())
    assert path.name == f"build-{completed_build}.tar.gz"
    with tarfile.open(path, "r:gz") as archive:
        names = archive.getnames()
    assert "bin/kiln-demo-tool" in names
    assert any(name.startswith("conda-meta/kiln-demo-tool-") for name in names)


def test_download_logs_of_a_build(client: Client, completed_build: int, tmp_path: Path) -> None:
    """``--output-filename`` is needed: without it the client crashes on ``logs`` (its bug)."""
    target = tmp_path / "build.log"
    done = client.run(
        "download", str(completed_build), "--artifact", "logs", "--output-filename", target,
    )  # fmt: skip
    assert done.returncode == 0, explain(done, client.kiln)
    log = target.read_text()
    assert "kiln-demo-tool" in log
    assert f"build {completed_build}" in log


def test_download_of_a_build_of_another_environment_is_refused(
    client: Client, completed_build: int, tmp_path: Path
) -> None:
    done = client.run("download", f"default/elsewhere:{completed_build}", cwd=tmp_path)
    assert done.returncode == 1, explain(done)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# solve


@pytest.fixture
def environment_yaml(tmp_path: Path, demo_channel: Path) -> Path:
    path = tmp_path / "environment.yaml"
    path.write_text(
        f"name: solved\nchannels:\n  - {demo_channel}\n"
        "dependencies:\n  - kiln-demo-tool\n  - kiln-demo-data\n"
    )
    return path


def test_solve_lists_the_packages_of_an_environment_yaml(
    client: Client, environment_yaml: Path
) -> None:
    """The client sends ``channels=`` and a trailing ``/`` on the last spec (its bugs)."""
    done = client.run("solve", environment_yaml, "--output", "json")
    assert done.returncode == 0, explain(done, client.kiln)
    packages = json.loads(done.stdout)
    assert {package["name"] for package in packages} == DEMO_PACKAGES
    assert all(package["size"].endswith("B") for package in packages)
    table = client.run("solve", environment_yaml)
    assert table.returncode == 0, explain(table)
    assert "kiln-demo-lib" in table.stdout and "Total Size" in table.stdout


# ---------------------------------------------------------------------------------------------
# --auth basic


def setup_token(server: ServedKiln) -> str | None:
    """The one-time setup token from ``kiln serve``'s banner (None once an admin exists)."""
    lines = server.output(last=10_000).splitlines()
    for index, line in enumerate(lines[:-1]):
        if "one-time setup token" in line:
            return lines[index + 1].strip()
    return None


@pytest.fixture(scope="module")
def local_account(client: Client) -> tuple[str, str]:
    """A local account (user name, password): the first admin, created as a new installation's
    operator does, with the setup token from the banner and ``POST /api/v1/setup/``."""
    token = setup_token(client.kiln)
    if token is None:
        pytest.skip("kiln serve printed no setup token: cannot create a local account")
    username, password = "alice", "correct horse battery staple"
    created = httpx.post(
        f"{client.kiln.url}/api/v1/setup/",
        json={"setup_token": token, "username": username, "password": password},
        timeout=30,
    )
    if created.status_code == 404:
        pytest.skip(f"POST /api/v1/setup/ does not exist yet: {created.text}")
    assert created.status_code == 200, created.text
    return username, password


def test_basic_auth_logs_in_with_a_local_account(
    client: Client, local_account: tuple[str, str]
) -> None:
    """``--auth basic`` posts JSON to ``/login/``, then sends only the session cookie, also for
    writes (``token`` POSTs with no Origin header). The URL names ``localhost``: aiohttp's
    cookie jar drops cookies set by an IP address."""
    username, password = local_account
    url = f"http://localhost:{client.kiln.port}"
    account = {"CONDA_STORE_USERNAME": username, "CONDA_STORE_PASSWORD": password}
    info = client.run("info", auth="basic", url=url, **account)
    assert info.returncode == 0, explain(info, client.kiln)
    assert "Authenticated True" in info.stdout
    assert "namespace::create" in info.stdout
    minted = client.run(
        "token", "--permission", "default/*:viewer", auth="basic", url=url, **account
    )
    assert minted.returncode == 0, explain(minted, client.kiln)
    assert claims_of(minted.stdout.strip())["role_bindings"] == {"default/*": ["viewer"]}


def test_basic_auth_with_a_wrong_password_is_refused(
    client: Client, local_account: tuple[str, str]
) -> None:
    username, _ = local_account
    refused = client.run(
        "info", auth="basic", url=f"http://localhost:{client.kiln.port}",
        CONDA_STORE_USERNAME=username, CONDA_STORE_PASSWORD="wrong",
    )  # fmt: skip
    assert refused.returncode != 0, explain(refused)
    assert "403" in refused.stderr, explain(refused)  # aiohttp's raise_for_status

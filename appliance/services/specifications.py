"""Use cases of specifications: submit one (create or update an environment), and solve one
without building it.

**Submitting** (``POST /api/v1/specification/``): the text (environment.yaml or conda-lock v1
lockfile, YAML or JSON) is parsed and validated with the server's limits
(:func:`~appliance.schemas.specification.parse_specification`). ``environment_name`` and
``environment_description``, when given, replace the document's name and description (conda-store
read them for lockfiles only; Kiln honours them for both kinds, so a caller never has them
silently ignored). ``is_lockfile: true`` insists on a lockfile; without it the kind is recognised
from the content. The target namespace is ``namespace`` or the caller's primary namespace. The
caller needs ``environment::create`` on ``<namespace>/<name>`` (also to update an existing
environment: every submission is a new build), and ``namespace::create`` on the namespace when
it does not exist yet (it is then created). Then
:func:`appliance.services.builds.submit_specification` applies the package and channel policy,
reuses a COMPLETED build of the same specification unless ``force``, and defers the build in the
same transaction.

**Solving** (``GET /api/v1/specification/``): conda-store sent the solve to a worker and held
the request until it ended; Kiln solves in the web process, where no build queue can delay it:
in a thread of its own (the web process's event loop keeps serving), at most
:data:`SOLVE_CONCURRENCY` solves at a time per process (a caller waits up to
:data:`SOLVE_QUEUE_SECONDS` for a turn, then gets a 503 to try again), each bounded by
``CondaStore.conda_max_solve_time``. The request is checked exactly as a submission is (names,
MatchSpec syntax, package policy, ``conda_allowed_channels``) and solved against the same
channels a build would use, for this host's platform, with the configured virtual packages
(never the host's). The caller needs ``environment::solve`` on their primary namespace: a solve
creates nothing, but costs CPU and reads channels on the server, so it is not open to callers
who hold no role at all. pip requirements are validated but not solved (conda-store's result
lists conda packages only). py-rattler is loaded by the first solve only, so a web process
that never solves never starts its runtime.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.auth.rbac import Permission
from appliance.builder.buildlog import BuildLog
from appliance.builder.pipeline import prepare_specification, solve_channels
from appliance.builder.settings import BuildSettings
from appliance.builder.solve import Solution, repodata_gateway, solve
from appliance.common.errors import KilnError, SolveError, SpecificationError
from appliance.config.platforms import current_platform
from appliance.db.models import CondaChannel, Namespace
from appliance.schemas import api as wire
from appliance.schemas.names import check_name
from appliance.schemas.specification import (
    EnvironmentSpec,
    LockfileSpec,
    parse_specification,
    specification_from_dict,
)
from appliance.services.access import Caller
from appliance.services.builds import submit_specification
from appliance.services.environments import MAX_DESCRIPTION_LENGTH
from appliance.services.transactions import AsyncTransactions

#: Solves one web process runs at once.
SOLVE_CONCURRENCY = 2
#: How long a solve request waits for a free slot before it is refused (503).
SOLVE_QUEUE_SECONDS = 30.0
#: Name of the (never stored) specification a solve request is checked as.
SOLVE_SPEC_NAME = "solve"


class SolverBusy(KilnError):
    """Every solver slot of this server is busy; try again in a moment."""

    code = "busy"


# --- submitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """``POST /api/v1/specification/``'s body (see the module docstring)."""

    specification: str | Mapping[str, Any]
    namespace: str | None = None
    is_lockfile: bool = False
    environment_name: str | None = None
    environment_description: str | None = None
    force: bool = False


def _parse(submission: Submission, settings: BuildSettings) -> EnvironmentSpec | LockfileSpec:
    text = submission.specification
    name = submission.environment_name
    if isinstance(text, str):
        spec = parse_specification(text, limits=settings.limits, name=name)
    else:
        spec = specification_from_dict(text, limits=settings.limits, name=name)
    if submission.is_lockfile and not isinstance(spec, LockfileSpec):
        raise SpecificationError(
            "is_lockfile is true, but the specification is an environment.yaml, not a conda-lock "
            "v1 lockfile (keys version, metadata, package); leave is_lockfile out to submit it",
            field="is_lockfile",
        )
    description = submission.environment_description
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise SpecificationError(
            f"environment_description is {len(description)} characters long; at most "
            f"{MAX_DESCRIPTION_LENGTH} are allowed",
            field="environment_description",
        )
    return spec


def submit(
    session: Session, caller: Caller, settings: BuildSettings, submission: Submission
) -> wire.BuildQueued:
    """Queue a build of the submitted specification (see the module docstring); the build's id,
    or that of the COMPLETED build of the same specification when nothing needed building."""
    spec = _parse(submission, settings)
    access = caller.access(session)
    namespace = check_name(submission.namespace or access.primary_namespace)
    access.require(Permission.ENVIRONMENT_CREATE, namespace=namespace, environment=spec.name)
    exists = session.scalar(
        select(Namespace.id).where(Namespace.name == namespace, Namespace.active())
    )
    if exists is None:
        access.require(Permission.NAMESPACE_CREATE, namespace=namespace)
    submitted = submit_specification(
        session,
        namespace=namespace,
        specification=spec,
        settings=settings,
        force=submission.force,
        description=submission.environment_description,
    )
    return wire.BuildQueued(build_id=submitted.build_id)


# --- solving ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolveRequest:
    """``GET /api/v1/specification/``'s query: channels, conda and pip requirements."""

    channels: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()


class Solver:
    """Solves specifications in the web process (see the module docstring): one per web process,
    sharing one repodata gateway (repodata is read once and cached) and a limit of concurrent
    solves."""

    def __init__(
        self,
        settings: BuildSettings,
        *,
        concurrency: int = SOLVE_CONCURRENCY,
        queue_seconds: float = SOLVE_QUEUE_SECONDS,
    ) -> None:
        self.settings = settings
        self.queue_seconds = queue_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._gateway: Any = None
        self._gateway_lock = threading.Lock()

    def _solve_now(self, spec: EnvironmentSpec, channels: Sequence[str], platform: str) -> Solution:
        """Run one solve to the end on this (worker) thread, in an event loop of its own."""
        with self._gateway_lock:
            if self._gateway is None:
                self._gateway = repodata_gateway(self.settings.repodata_cache)
            gateway = self._gateway
        settings = self.settings
        return asyncio.run(
            solve(
                specs=spec.solver_dependencies(channel_alias=settings.channel_alias),
                channels=channels,
                platforms=[platform],
                virtual_packages_by_platform=settings.virtual_packages,
                variables=spec.variables,
                gateway=gateway,
                log=BuildLog(),
                timeout_seconds=settings.max_solve_seconds,
            )
        )

    async def solve(self, spec: EnvironmentSpec, channels: Sequence[str]) -> Solution:
        """Solve ``spec`` against ``channels`` for this host's platform.

        Raises :class:`SolverBusy` when no slot frees up in time, :class:`SolveError` when the
        specification cannot be satisfied or the solve outlives ``max_solve_seconds``, and
        :class:`~appliance.common.errors.ChannelError` when a channel cannot be read. A slot
        stays taken until its thread really ends, even when the request gave up on it.
        """
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_seconds)
        except TimeoutError:
            raise SolverBusy(
                f"the server is already running {SOLVE_CONCURRENCY} solves; try again in a moment"
            ) from None
        platform = current_platform()
        running = asyncio.ensure_future(
            asyncio.to_thread(self._solve_now, spec, tuple(channels), platform)
        )
        running.add_done_callback(self._release)
        limit = self.settings.max_solve_seconds
        try:
            return await asyncio.wait_for(asyncio.shield(running), limit + 5)
        except TimeoutError:
            raise SolveError(
                f"{platform}: the solver ran longer than {limit:g}s "
                "(CondaStore.conda_max_solve_time); narrow the specification"
            ) from None

    def _release(self, finished: asyncio.Future[Solution]) -> None:
        self._slots.release()
        if not finished.cancelled():
            finished.exception()  # retrieved: an abandoned solve's error is not "never retrieved"


def _solve_spec(request: SolveRequest, settings: BuildSettings) -> EnvironmentSpec:
    dependencies: list[Any] = list(request.conda)
    if request.pip:
        dependencies.append({"pip": list(request.pip)})
    data = {
        "name": SOLVE_SPEC_NAME,
        "channels": list(request.channels),
        "dependencies": dependencies,
    }
    spec = specification_from_dict(data, limits=settings.limits)
    if not isinstance(spec, EnvironmentSpec):  # pragma: no cover - the keys make it one
        raise SpecificationError("the solve request is not an environment specification")
    prepared = prepare_specification(spec, settings)
    assert isinstance(prepared, EnvironmentSpec)
    if not prepared.dependencies:
        raise SpecificationError(
            "nothing to solve: give at least one conda requirement (conda=numpy)", field="conda"
        )
    return prepared


def _authorize_solve(session: Session, caller: Caller, channels: Sequence[str]) -> dict[str, int]:
    """Check ``environment::solve`` on the caller's primary namespace; the ids of the channels
    Kiln already knows (by normalized URL)."""
    access = caller.access(session)
    access.require(Permission.ENVIRONMENT_SOLVE, namespace=access.primary_namespace)
    rows = session.execute(
        select(CondaChannel.name, CondaChannel.id).where(CondaChannel.name.in_(list(channels)))
    )
    return {name: channel_id for name, channel_id in rows}


async def solve_specification(
    db: AsyncTransactions, caller: Caller, solver: Solver, request: SolveRequest
) -> list[wire.SolvedPackage]:
    """The packages ``request`` resolves to, sorted by name (see the module docstring)."""
    settings = solver.settings
    spec = _solve_spec(request, settings)
    channels = solve_channels(spec, settings)
    channel_ids = await db.run(_authorize_solve, caller, channels)
    solution = await solver.solve(spec, channels)
    packages = []
    for record in solution.for_platform(current_platform()):
        channel = str(record.channel).rstrip("/")
        packages.append(
            wire.SolvedPackage(
                name=record.name.normalized,
                version=str(record.version),
                build=str(record.build),
                build_number=int(record.build_number),
                channel=channel,
                channel_id=channel_ids.get(channel),
                subdir=str(record.subdir),
                filename=record.file_name,
                url=str(record.url),
                size=record.size,
                sha256=record.sha256.hex() if record.sha256 else None,
                md5=record.md5.hex() if record.md5 else None,
                license=record.license,
                depends=list(record.depends),
                constrains=list(record.constrains),
            )
        )
    return packages

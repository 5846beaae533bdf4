"""Solve a specification into package records, one list per target platform."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import rattler
from rattler import Gateway, RepoDataRecord, SourceConfig, Subdir
from rattler.exceptions import SolverError

from appliance.builder.buildlog import BuildLog
from appliance.builder.platforms import virtual_packages
from appliance.common.errors import ChannelError, SolveError


@dataclass(frozen=True)
class Solution:
    """The records chosen for each platform, in the solver's order (sorted by name on output)."""

    channels: tuple[str, ...]
    records: Mapping[str, list[RepoDataRecord]]

    def for_platform(self, platform: str) -> list[RepoDataRecord]:
        return self.records[platform]


def repodata_gateway(cache_dir: Path) -> Gateway:
    """One gateway per process: repodata is fetched once, cached on disk and shared by builds.

    ``force-cache-only`` is not used: a stale cache would silently hide new packages. For offline
    sites the channels are local (``file://``) and need no network at all.
    """
    return Gateway(cache_dir=cache_dir, default_config=SourceConfig(), show_progress=False)


def _summarise(message: str) -> str:
    """One line a user can act on, from the solver's explanation tree.

    The tree's first line names the requested package that cannot be installed; its deepest
    lines say why (a missing virtual package, a conflict). Both go into the one line.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "the specification cannot be satisfied"
    leaves = [
        line.lstrip("├└│─ ").rstrip(".:")
        for line in lines[1:]
        if "no candidates" in line or "conflict" in line or "cannot be installed" in line
    ]
    headline = lines[0].removeprefix("Cannot solve the request because of:").strip()
    headline = headline.removesuffix(":").strip()
    reason = "; ".join(dict.fromkeys(leaves[-2:])) if leaves else ""
    text = f"the specification cannot be satisfied: {headline}"
    return f"{text} ({reason})" if reason else text


def _channel_problem(text: str, channels: Sequence[str]) -> str:
    """One line from rattler's chained fetch error: what failed, and the innermost cause."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines[1:]]
    what = lines[0] if lines else "unknown error"
    reason = f": {causes[-1]}" if causes else ""
    return (
        f"cannot read channel repodata ({what}){reason}; check that the channel exists and is "
        f"reachable from this host (channels: {', '.join(channels)})"
    )


async def solve(
    *,
    specs: Sequence[str],
    channels: Sequence[str],
    platforms: Sequence[str],
    virtual_packages_by_platform: Mapping[str, Sequence[str]],
    variables: Mapping[str, str],
    gateway: Gateway,
    log: BuildLog,
    timeout_seconds: float,
) -> Solution:
    """Solve ``specs`` against ``channels`` (normalized URLs, in priority order) per platform.

    Channel priority is strict, as in conda-store (``--strict-channel-priority``). Raises
    :class:`SolveError` with a one-line reason when the specification cannot be satisfied (the
    solver's full explanation goes to the log) and :class:`ChannelError` when a channel cannot be
    read.
    """
    if not channels:
        raise SolveError("no channels to solve against: list at least one under 'channels'")
    records: dict[str, list[RepoDataRecord]] = {}
    for platform in platforms:
        virtual = virtual_packages(platform, virtual_packages_by_platform, variables)
        log.write(
            f"solving {len(specs)} specs for {platform} against {', '.join(channels)} "
            f"(virtual packages: {', '.join(str(v) for v in virtual) or 'none'})"
        )
        try:
            solved = await rattler.solve(
                sources=list(channels),
                specs=list(specs),
                gateway=gateway,
                platforms=[Subdir(platform), Subdir("noarch")],
                virtual_packages=virtual,
                timeout=datetime.timedelta(seconds=timeout_seconds),
                channel_relations="disabled",
            )
        except SolverError as error:
            log.write(str(error))
            raise SolveError(f"{platform}: {_summarise(str(error))}") from error
        except Exception as error:  # rattler raises many FetchRepoData/IO error types
            text = str(error)
            log.write(f"{type(error).__name__}: {text}")
            if "timed out" in text.lower() or "timeout" in type(error).__name__.lower():
                raise SolveError(
                    f"{platform}: the solver ran longer than {timeout_seconds:g}s "
                    "(CondaStore.conda_max_solve_time); narrow the specification"
                ) from error
            raise ChannelError(_channel_problem(text, channels)) from error
        solved.sort(key=lambda record: str(record.name.normalized))
        for record in solved:
            log.write(
                f"  {record.name.normalized} {record.version} {record.build} ({record.channel})"
            )
        log.write(f"{len(solved)} packages for {platform}")
        records[platform] = solved
    return Solution(channels=tuple(channels), records=records)

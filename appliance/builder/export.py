"""The pinned ``environment.yaml`` of a build (the YAML artifact)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import yaml
from rattler import PrefixRecord, RepoDataRecord

from appliance.builder.lock import PipLock


def pinned_environment(
    *,
    name: str,
    channels: Sequence[str],
    records: Sequence[RepoDataRecord | PrefixRecord],
    pip: Sequence[PipLock],
    variables: Mapping[str, str],
    description: str | None,
) -> str:
    """YAML that recreates the build exactly: ``name=version=build`` pins, pip ``==`` pins.

    Dependencies are sorted by name so the same build always exports the same text.
    """
    dependencies: list[object] = [
        f"{r.name.normalized}={r.version}={r.build}"
        for r in sorted(records, key=lambda r: str(r.name.normalized))
    ]
    if pip:
        dependencies.append(
            {"pip": [f"{p.name}=={p.version}" for p in sorted(pip, key=lambda p: p.name)]}
        )
    document: dict[str, object] = {"name": name}
    if description:
        document["description"] = description
    document["channels"] = list(channels)
    document["dependencies"] = dependencies
    if variables:
        document["variables"] = dict(sorted(variables.items()))
    text: str = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    return text

"""The code's layers point one way (DESIGN.md "Layers of the code"); this test keeps them so.

Every import in ``appliance`` and ``tui`` is read from the source (including imports inside
functions), and checked against the layer table: a module may import its own package and the
packages listed for it, never a higher layer. Third-party frameworks are confined the same way
(Textual only in ``tui``, HTTP frameworks only in the HTTP layer, SQLAlchemy only in ``db`` and
``services``, py-rattler only in the engines).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What each package under ``appliance`` may import (besides itself), lowest layer first.
ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "config": {"common"},
    "schemas": {"common", "config"},
    "storage": {"common", "config"},
    "channels": {"common", "config"},
    "db": {"common", "config", "schemas"},
    "queue": {"common", "config", "db"},
    "builder": {"common", "config", "schemas", "storage", "channels", "oci"},
    "auth": {"common", "config"},
    # The image engine: OCI layouts, layers, configs, blobs in storage (no rattler, no db).
    "oci": {"common", "config", "storage"},
    "observability": {"common", "config"},
    "services": {
        "common",
        "config",
        "schemas",
        "storage",
        "channels",
        "builder",
        "auth",
        "db",
        "queue",
        "oci",
    },
    "api": {"common", "config", "schemas", "storage", "builder", "auth", "services"},
    # The web UI's pages: the API's context and credentials, the same use cases.
    "ui": {"api", "common", "config", "schemas", "storage", "auth", "services"},
    # The registry's routes use the API's context and credentials (appliance.api.security).
    "registry": {"api", "common", "config", "schemas", "storage", "auth", "services", "oci"},
    "worker": {
        "common",
        "config",
        "schemas",
        "storage",
        "channels",
        "builder",
        "db",
        "queue",
        "services",
        "observability",
        "oci",
    },
    "web": {
        "api",
        "ui",
        "registry",
        "common",
        "config",
        "schemas",
        "storage",
        "auth",
        "db",
        "queue",
        "services",
        "observability",
    },
    "supervisor": {"common", "config", "auth", "db", "queue", "services", "observability"},
    "cli": {
        "api",
        "common",
        "config",
        "schemas",
        "storage",
        "channels",
        "builder",
        "auth",
        "db",
        "queue",
        "services",
        "worker",
        "web",
        "supervisor",
        "observability",
        "oci",
    },
    # appliance/__init__.py holds the version; appliance/__main__.py is `python -m appliance`.
    "__init__": set(),
    "__main__": {"cli"},
}

#: Third-party packages and the layers that may use them.
CONFINED: dict[str, set[str]] = {
    "textual": {"tui"},
    "litestar": {"api", "ui", "registry", "web"},
    "granian": {"web", "supervisor"},
    "prometheus_client": {"observability", "web"},
    "sqlalchemy": {"db", "services"},
    "alembic": {"db"},
    "procrastinate": {"queue", "worker", "services"},
    "rattler": {"builder", "channels", "schemas"},
    "conda_pack": {"builder"},
    "conda_lock": {"builder"},
    "minio": {"storage"},
    "jwt": {"auth"},
    "httpx": {"auth", "tui"},
}


def imports_of(path: Path) -> set[str]:
    """Absolute module names ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def layer_of(path: Path) -> str:
    relative = path.relative_to(ROOT)
    if relative.parts[0] == "tui":
        return "tui"
    return relative.parts[1] if len(relative.parts) > 2 else relative.stem


def modules() -> list[Path]:
    return sorted([*(ROOT / "appliance").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_respect_the_layers(path: Path) -> None:
    layer = layer_of(path)
    problems = []
    for name in sorted(imports_of(path)):
        parts = name.split(".")
        if parts[0] == "appliance" and len(parts) > 1:
            target = parts[1]
            if layer == "tui":
                problems.append(f"tui imports {name}: the console talks to Kiln only over HTTP")
            elif target in ALLOWED and target != layer and target not in ALLOWED.get(layer, set()):
                problems.append(f"{layer} imports {name} (a higher or unrelated layer)")
        allowed_users = CONFINED.get(parts[0])
        if allowed_users is not None and layer not in allowed_users:
            problems.append(
                f"{layer} imports {parts[0]}, which only {sorted(allowed_users)} may use"
            )
    assert not problems, "\n".join(problems)


def test_every_package_has_a_place_in_the_table() -> None:
    packages = {p.name for p in (ROOT / "appliance").iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED"

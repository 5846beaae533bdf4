"""The admin console (``tui``) against a live Kiln: Pilot tests and SVG snapshots.

Fixtures (from :mod:`tests.fixtures.tui`):

``admin_token``
    A recorded token with admin on everything, as ``kiln tui`` mints on the Kiln host.
``seeded_kiln``
    A live ``kiln web`` (``live_kiln``) with fixed namespaces, environments and builds (one
    of them FAILED), the same on every run.
``served_kiln``
    A real ``kiln serve`` (supervisor, managed PostgreSQL, web, a worker) whose gated channel
    keeps a build BUILDING until the test lets it go.
``console``
    A factory of the app on ``live_kiln`` with the admin token and steady formats (times,
    pids, free space, ports and temporary paths as placeholders, for snapshots).

``live_kiln`` comes from :mod:`tests.fixtures.browser`, ``callers`` from
:mod:`tests.fixtures.api`. Snapshots live in ``__snapshots__/`` (``--snapshot-update`` after a
deliberate change to the screens; look at the SVGs before committing them).
"""

from tests.fixtures.tui import admin_token, console, seeded_kiln, served_kiln

__all__ = ["admin_token", "console", "seeded_kiln", "served_kiln"]

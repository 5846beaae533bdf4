"""Kiln's admin console (``kiln tui``): a Textual app that talks to a running Kiln only over its
HTTP API (:mod:`tui.client`). :mod:`tui.app` is the app; :mod:`tui.screens` holds one screen
per task, :mod:`tui.widgets` what they share, ``kiln.tcss`` the layout."""

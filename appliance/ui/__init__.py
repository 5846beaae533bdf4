"""The web UI: server-rendered pages over the same use cases and permission checks as the API.

:func:`~appliance.ui.pages.ui_handlers` gives the routes (``/ui/...``, ``/ui/static/...`` and a
redirect from the url prefix itself); :func:`~appliance.web.app.create_app` mounts them under
``CondaStoreServer.url_prefix`` when ``CondaStoreServer.enable_ui``.
"""

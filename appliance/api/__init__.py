"""The REST API: conda-store's ``/api/v1`` and ``/api/v2`` plus login and logout.

Handlers parse the request, call one use case (appliance.services) with the caller, and wrap
the result in conda-store's envelope. Permission checks happen in the use cases; errors become
responses in appliance.web.errors. :func:`api_handlers` lists every route group.
"""

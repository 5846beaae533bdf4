"""conda-store's ``/api/v2`` routes."""

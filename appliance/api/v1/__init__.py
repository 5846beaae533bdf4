"""conda-store's ``/api/v1`` routes."""

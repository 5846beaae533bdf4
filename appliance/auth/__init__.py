"""Authentication and authorization engines: secrets, API tokens (JWT), role bindings."""

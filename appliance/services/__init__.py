"""Use cases: transactions over the database, permission checks, deferring jobs.

Each function works in the caller's SQLAlchemy session and transaction (the caller commits), so
HTTP handlers, workers and CLI commands compose them the same way.
"""

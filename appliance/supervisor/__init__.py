"""The supervisor layer: `kiln serve` runs Kiln's processes and keeps them running.

Modules: ``postgres`` (the managed PostgreSQL server, a direct child process in the data dir),
``children`` (web and worker child processes: ordered start, restart with backoff, reverse-order
stop), ``notify`` (systemd readiness notifications).
"""

"""The supervisor layer: `kiln serve` runs Kiln's processes and keeps them running.

Modules: ``serve`` (the boot sequence and its reverse, restart targets), ``postgres`` (the
managed PostgreSQL server, a direct child process in the data dir), ``children`` (web and
worker child processes: ordered start, restart with backoff or on request, reverse-order stop),
``status`` (the status file the admin API reads: states, pids, uptimes, restarts, memory),
``control`` (restart requests from the admin API, carried out in order), ``notify`` (systemd
readiness notifications). The file formats shared with the web process are in
appliance.services.supervision.
"""

"""The job queue: Procrastinate on Kiln's PostgreSQL (no second queue, broker or lock service).

- :mod:`.tasks`: the names and arguments of Kiln's jobs, the contract between the code that
  defers them (services, in the transaction that creates their rows) and the workers.
- :mod:`.app`: the Procrastinate application and worker settings.
"""

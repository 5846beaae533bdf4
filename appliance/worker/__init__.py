"""``kiln worker``: Procrastinate workers that build environments from the queue.

- :mod:`.tasks`: the job implementations (they call services for database state and the build
  engine for the work).
- :mod:`.runner`: one worker process: database, engine, queue, graceful stop.
"""

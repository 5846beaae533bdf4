"""``Supervisor``: how ``kiln serve`` runs Kiln's processes on one host."""

from __future__ import annotations

from traitlets import Float, Integer

from appliance.config.base import KilnConfigurable


class Supervisor(KilnConfigurable):
    """How `kiln serve` starts, restarts and stops Kiln's processes on this host."""

    workers = Integer(
        1,
        min=0,
        help="""
        Number of `kiln worker` processes `kiln serve` runs. Each runs
        CondaStoreWorker.concurrency builds at a time. 0 runs no worker here (builds are then
        run by `kiln worker` processes on other hosts sharing the database).

        Example: c.Supervisor.workers = 2
        """,
    ).tag(config=True)

    drain_timeout = Float(
        600.0,
        min=0.0,
        help="""
        Seconds running builds get to finish when Kiln stops (SIGTERM, `systemctl stop`);
        builds still running then are stopped and requeued by the next worker. Keep systemd's
        TimeoutStopSec above it (the shipped unit uses 15 minutes).

        Example: c.Supervisor.drain_timeout = 120
        """,
    ).tag(config=True)

    web_stop_timeout = Float(
        30.0,
        min=0.0,
        help="""
        Seconds the web process gets to finish open requests when Kiln stops.

        Example: c.Supervisor.web_stop_timeout = 10
        """,
    ).tag(config=True)

    restart_backoff_max = Float(
        30.0,
        min=0.5,
        help="""
        Longest delay, in seconds, before a crashed process is restarted (the delay doubles
        from 0.5 s after each quick crash). A process that crashes 5 times within a minute is
        reported as crash-looping and retried at this pace.

        Example: c.Supervisor.restart_backoff_max = 60
        """,
    ).tag(config=True)

    startup_timeout = Float(
        60.0,
        min=1.0,
        help="""
        Seconds `kiln serve` waits for the web process to answer before it reports a failed
        start (and exits non-zero, so systemd shows the failure).

        Example: c.Supervisor.startup_timeout = 120
        """,
    ).tag(config=True)

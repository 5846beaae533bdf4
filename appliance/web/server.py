"""Serving the app with granian: worker processes, signals, a bounded shutdown.

granian's main process binds the socket and runs ``workers`` worker processes; each builds its
own app (:func:`load_app`, so each has its own database pool) and serves it until asked to stop.

- SIGTERM or SIGINT: the workers stop accepting connections, finish open requests and run the
  app's shutdown; a worker still busy after ``stop_timeout`` seconds is killed (granian can hang
  on a signal during a worker's start otherwise: NOTES.md). Then :func:`serve` returns.
- SIGHUP: the workers are replaced one by one (e.g. after a configuration change).
- A worker that dies makes :func:`serve` stop the others and exit with status 1; restarting is
  the supervisor's job (``kiln serve``, systemd), which then sees and reports the crash.

:func:`serve` must run in the main thread (granian installs signal handlers).
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from litestar import Litestar

from appliance.common.errors import KilnError
from appliance.common.service_log import handler_configs
from appliance.web.app import create_app
from appliance.web.settings import WebSettings

logger = logging.getLogger("kiln.web")

#: What granian's process titles and logs call the app (it is loaded by :func:`load_app`, not
#: imported from this string, so a frozen binary needs no hidden import for it).
APP_NAME = f"{create_app.__module__}:{create_app.__name__}"

#: The format of Kiln's other commands (appliance.cli), for granian's own messages too.
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class ServeError(KilnError):
    """The web server could not start."""

    code = "serve"


def load_app(settings: WebSettings) -> Litestar:
    """Build the app in a granian worker process (module level: picklable for spawned
    workers)."""
    return create_app(settings)


def logging_config(level: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` for granian's processes: everything, granian's messages
    included, to stderr in Kiln's format at ``level`` (``"INFO"``), and to this process's
    service log file when it has one (appliance.common.service_log)."""
    service_logs = handler_configs()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kiln": {"format": LOG_FORMAT, "datefmt": "%H:%M:%S"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "kiln",
                "stream": "ext://sys.stderr",
            },
            **service_logs,
        },
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        },
        "root": {"handlers": ["stderr", *service_logs], "level": level},
    }


def serve(
    settings: WebSettings,
    *,
    address: str,
    port: int,
    workers: int = 1,
    stop_timeout: float = 10.0,
    log_level: str = "INFO",
) -> None:
    """Serve the app on ``address:port`` until SIGTERM/SIGINT; return after a clean stop.

    Raises :class:`ServeError` when the address cannot be bound, and ``SystemExit(1)`` (from
    granian) when a worker process died.
    """
    check_can_listen(address, port)
    server = Granian(
        target=APP_NAME,
        address=address,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        workers_kill_timeout=max(1, round(stop_timeout)),
        http=HTTPModes.auto,
        websockets=False,
        log_level=LogLevels(log_level.lower()),
        log_dictconfig=logging_config(log_level.upper()),
        log_access=False,
    )
    logger.info(
        "serving on http://%s:%d%s with %d worker process(es)",
        address, port, settings.url_prefix.rstrip("/"), workers,
    )  # fmt: skip
    server.serve(target_loader=partial(load_app, settings), wrap_loader=False)


def check_can_listen(address: str, port: int) -> None:
    """Raise :class:`ServeError` unless ``address:port`` can be bound now.

    granian reports a taken port with a Rust backtrace, and binds with ``SO_REUSEPORT``, so a
    second Kiln on the same port would quietly share the traffic; check first, as a plain
    server would (``SO_REUSEADDR`` only, so connections still closing do not count).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address, port))
    except OSError as error:
        raise ServeError(
            f"cannot listen on {address}:{port}: {error.strerror or error}. Is another program "
            "(or another Kiln) using the port? Choose another with CondaStoreServer.port "
            "(KILN_PORT) or CondaStoreServer.address (KILN_ADDRESS)"
        ) from None

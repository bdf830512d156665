"""Run an app under uvicorn until SIGTERM or SIGINT, then drain requests and return.

uvicorn handles the signals when run from the main thread: on the first SIGTERM/SIGINT it stops
accepting connections, lets requests in flight finish (up to ``graceful_timeout`` seconds) and
runs the app's lifespan shutdown, which stops the model poller; a second SIGINT forces the exit.
uvicorn then re-raises the signal so the process dies of it. :func:`run_server` swallows that
re-raise and *returns*, because the caller still has work to do after a clean shutdown (flush
the inference log, close the metadata store) and should exit with status 0.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _absorb(signum: int, frame: FrameType | None) -> None:
    """Stands in for the default handler while uvicorn re-raises the signal it handled."""


def run_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    log_level: str = "info",
    graceful_timeout: int = 10,
    sock: socket.socket | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (or a bound ``sock``) until signalled, then return."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
        access_log=False,
    )
    server = uvicorn.Server(config)
    if threading.current_thread() is not threading.main_thread():
        server.run(sockets=[sock] if sock is not None else None)
        return
    previous = {sig: signal.signal(sig, _absorb) for sig in _SIGNALS}
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

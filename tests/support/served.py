"""medicus served on a loopback port in a thread of the test process, for clients that need a
real HTTP server (WebDAV clients, Matrix clients)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from medicus.app import create_app
from medicus.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    settings: Settings, port: int | None = None, graceful_seconds: int | None = None
) -> Iterator[str]:
    """medicus for `settings` on loopback (`port`, or a free one), in a thread of its own
    (with its own event loop and platform, as a separate server would be); its base URL.
    `graceful_seconds`: how long the end waits for open requests (a browser's long poll)
    before cutting them; by default it waits for them."""
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=graceful_seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="medicus-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)

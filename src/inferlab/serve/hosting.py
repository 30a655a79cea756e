"""Run an ASGI app with uvicorn in a background thread: how notebooks and tests host servers.

    with ServerThread(create_app(time_scale=0.1)) as server:
        print(server.base_url)        # http://127.0.0.1:<free port>/v1

The thread owns its own event loop, so a notebook's kernel loop stays free for the learner's
`await`s. We bind the socket ourselves (port 0 picks a free one) and hand it to uvicorn, so there
is no race between choosing a port and listening on it.

We make that loop ourselves rather than call uvicorn's `Server.run()`, which goes through
`asyncio.run`: a learner's `nest_asyncio.apply()` replaces `asyncio.run` with a version that,
on Python 3.12+, rejects the `loop_factory` argument uvicorn passes, and the server would fail.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn

# subtle: uvicorn closes idle keep-alive connections after 5 s, the very time httpx (and many
# clients) keep them for. A request sent on a connection as the server closes it fails with a
# ReadError. A server should outwait its clients, so idle connections die on the client's side.
# On SIGTERM, requests still open get 5 s, then are cancelled: a stream or a long-poll must not
# hold a restart (uvicorn's default waits for them for ever).
UVICORN_DEFAULTS = {"timeout_keep_alive": 75, "timeout_graceful_shutdown": 5}


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (faster, and untouched by nest_asyncio), else asyncio's own."""
    try:
        import uvloop
    except ImportError:  # Windows, or installed without it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _SignallingServer(uvicorn.Server):
    """A uvicorn Server that sets an event once it accepts connections (no polling needed)."""

    def __init__(self, config: uvicorn.Config, started: threading.Event):
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._started_event.set()


class ServerThread:
    """An ASGI app served on a loopback port from a daemon thread; stop() or `with` ends it."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, **uvicorn_options: Any):
        self.app = app
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        options = {
            **UVICORN_DEFAULTS,
            "log_level": "warning",
            "timeout_graceful_shutdown": 2,
            **uvicorn_options,
        }
        self._started = threading.Event()
        self._server = _SignallingServer(uvicorn.Config(app, **options), self._started)
        self._thread = threading.Thread(
            target=self._run, name=f"inferlab server :{self.port}", daemon=True
        )
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in /v1."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._started.is_set()

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise RuntimeError(f"the server did not start within {timeout_s} s")
        if self._error is not None or not self._thread.is_alive():
            raise RuntimeError(f"the server failed to start: {self._error!r}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to finish (open streams get `timeout_graceful_shutdown`), then join."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._socket.close()

    def _run(self) -> None:
        loop = _new_event_loop()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # SystemExit too: uvicorn exits on startup failures
            self._error = exc
        finally:
            loop.close()
            self._started.set()  # wake start() whatever happened

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

"""Host a server: in a background thread (`ServerThread`, for tests), or in a process of its
own (`ServerProcess`, for notebooks and benchmarks, so the kernel runs only the client).

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
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from ._settings import HttpLimits
from .http_limits import limited_http_protocol

# subtle: uvicorn closes idle keep-alive connections after 5 s, the very time httpx (and many
# clients) keep them for. A request sent on a connection as the server closes it fails with a
# ReadError. A server should outwait its clients, so idle connections die on the client's side.
# On SIGTERM, requests still open get 5 s, then are cancelled: a stream or a long-poll must not
# hold a restart (uvicorn's default waits for them for ever).
UVICORN_DEFAULTS: dict[str, Any] = {"timeout_keep_alive": 75, "timeout_graceful_shutdown": 5}


def uvicorn_options_for(app: Any) -> dict[str, Any]:
    """UVICORN_DEFAULTS and the app's HTTP limits (header size, count and timeout, a connection
    cap: `http_limits.py`), which a service's app carries from its settings; any other app gets
    the defaults. `uvicorn.run(app, **uvicorn_options_for(app))`."""
    limits = getattr(getattr(app, "state", None), "http_limits", None) or HttpLimits()
    return {
        **UVICORN_DEFAULTS,
        "timeout_keep_alive": limits.idle_timeout_s,
        "http": limited_http_protocol(limits),
    }


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
            **uvicorn_options_for(app),
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


# ---------------------------------------------------------------------------------------------
# A server in a process of its own


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it); the child binds it a moment later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`inferlab <command>` (serve, proxy or jobs) in a child process, with its own interpreter.

        with ServerProcess("serve", ServerSettings(time_scale=0.1)) as server:
            server.base_url          # http://127.0.0.1:<port>/v1
            print(server.log())      # what it printed, for when something goes wrong

    Why a process and not a thread: the notebook's kernel then runs only the client, so the
    learner's Python (the load generator, plots, the notebook itself) never takes the
    simulated accelerator's turn on the GIL. The child exits with its parent: it watches the
    pipe on its stdin, which closes when the parent dies, however it dies.
    """

    def __init__(self, command: str, settings: Any, *, host: str = "127.0.0.1") -> None:
        import tempfile

        self.command = command
        self.settings = settings
        self.host = host
        self.port = free_port(host)
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (it lives as long as we do)
            prefix=f"inferlab-{command}-", suffix=".log", delete=False
        )
        self.log_path = self._log.name
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        settings = json.dumps(self.settings.to_dict())
        command = [sys.executable, "-m", "inferlab", self.command, "--host", self.host]
        command += ["--port", str(self.port), "--settings-json", settings]
        command += ["--log-level", "warning", "--exit-with-parent"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_until_healthy(timeout_s)
        return self

    def _wait_until_healthy(self, timeout_s: float) -> None:
        # Waiting on another process: nothing to await but its answer, so ask until it comes.
        import httpx

        deadline = time.monotonic() + timeout_s
        url = f"http://{self.host}:{self.port}/health"
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"`inferlab {self.command}` exited:\n{self.log()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"`inferlab {self.command}` did not answer in {timeout_s} s:\n{self.log()}"
        )

    def log(self, last_lines: int = 50) -> str:
        """The end of what the server printed."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return "".join(log.readlines()[-last_lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it will not go."""
        process, self._process = self._process, None
        if process is None:
            self._log.close()
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()
        self._log.close()  # the log file stays on disk for log(); the child had its own handle

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def exit_with_parent() -> None:
    """In a child started by ServerProcess: SIGTERM ourselves once the parent's end of our
    stdin closes (the parent exited, or was killed), so no server outlives its notebook."""

    def watch() -> None:
        while sys.stdin.buffer.read(1024):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit with parent", daemon=True).start()

"""Where the notebooks' model server lives: one call gives a base URL.

    url = inferlab.base_url()

With `INFERLAB_BASE_URL` set (for example http://127.0.0.1:8080/v1 for llama.cpp's llama-server)
that server is checked and used. Otherwise the embedded server starts, once per kernel, in a
background thread on a free loopback port, and stops when the kernel exits.
`INFERLAB_TIME_SCALE` (default 1: real H100 speed) makes the embedded accelerator faster.
"""

from __future__ import annotations

import atexit
import os
import threading

import httpx

from ..engine.model import SimulatedModel
from ..errors import ServerUnavailableError
from ..serve.app import create_app
from ..serve.hosting import ServerThread

_lock = threading.Lock()
_embedded: ServerThread | None = None


def external_base_url() -> str | None:
    """`INFERLAB_BASE_URL` without a trailing slash, or None when it is unset or empty."""
    url = os.environ.get("INFERLAB_BASE_URL", "").strip()
    return url.rstrip("/") or None


def api_key() -> str | None:
    """`INFERLAB_API_KEY`, for servers started with an API key (vLLM's --api-key)."""
    return os.environ.get("INFERLAB_API_KEY") or None


def base_url(*, check: bool = True) -> str:
    """The base URL the course talks to: the external server if configured, else embedded."""
    url = external_base_url()
    if url is None:
        return embedded_server().base_url
    if check:
        check_server(url)
    return url


def check_server(url: str, *, timeout_s: float = 5.0) -> None:
    """Raise ServerUnavailableError, saying what to do, unless `url` lists its models."""
    headers = {"Authorization": f"Bearer {api_key()}"} if api_key() else {}
    try:
        response = httpx.get(f"{url}/models", headers=headers, timeout=timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServerUnavailableError(
            f"INFERLAB_BASE_URL is {url!r}, but GET {url}/models failed ({exc!r}). Start that "
            "server (the URL usually ends in /v1), or unset INFERLAB_BASE_URL to use the "
            "embedded one."
        ) from exc


def embedded_server() -> ServerThread:
    """The embedded model server of this process, started on first use."""
    global _embedded
    with _lock:
        if _embedded is None or not _embedded.running:
            time_scale = float(os.environ.get("INFERLAB_TIME_SCALE", "1"))
            _embedded = ServerThread(create_app(time_scale=time_scale)).start()
            atexit.register(_embedded.stop)
        return _embedded


def embedded_model() -> SimulatedModel | None:
    """The embedded server's model, to turn its knobs; None when an external server is used."""
    if external_base_url() is not None:
        return None
    model = embedded_server().app.state.model
    assert isinstance(model, SimulatedModel)
    return model


def time_scale() -> float:
    """Wall seconds per simulated second of the server in use: divide wall times by it to read
    them as H100 times. 1 for an external server, which runs in real time."""
    model = embedded_model()
    return 1.0 if model is None else model.time_scale

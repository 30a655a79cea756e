"""Where the notebooks' model server lives: one call gives a base URL.

    url = inferlab.base_url()

With `INFERLAB_BASE_URL` set (for example http://127.0.0.1:8080/v1 for llama.cpp's llama-server)
that server is checked and used. Otherwise the embedded server starts, once per kernel, in a
process of its own on a free loopback port (see `servers.py`), and stops with the kernel.
Its speed is chosen by measuring this machine when it starts (`speed_check.py`: the
fastest time scale at which the host's own cost stays under a few percent of a decode step);
`INFERLAB_TIME_SCALE` sets it instead (1: real H100 speed; the test suite sets 0.05).
"""

from __future__ import annotations

import os
import threading

import httpx

from ..errors import ServerUnavailableError
from ..load.clock import REAL_TIME, ModelClock
from .servers import RunningModelServer, start_model_server
from .speed_check import (
    PROBE_SCALE,
    ScaleChoice,
    choose_time_scale,
    decode_step_s,
    measure_host_costs,
)

_lock = threading.Lock()
_embedded: RunningModelServer | None = None
_choice: ScaleChoice | None = None  # made once per kernel, kept if the server restarts


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


def embedded_server() -> RunningModelServer:
    """The embedded model server of this kernel, started on first use in its own process.
    Its knobs: `embedded_server().configure(...)`, `.set_faults(...)`; its log: `.log()`."""
    global _embedded
    with _lock:
        if _embedded is None or not _embedded.process.running:
            _embedded = _start_embedded()
        return _embedded


def _start_embedded() -> RunningModelServer:
    global _choice
    override = os.environ.get("INFERLAB_TIME_SCALE", "").strip()
    if override:
        _choice = ScaleChoice(float(override), "INFERLAB_TIME_SCALE")
    if _choice is not None:
        return start_model_server(time_scale=_choice.time_scale)
    server = start_model_server(time_scale=PROBE_SCALE)
    try:
        costs = measure_host_costs(server.base_url)
        _choice = choose_time_scale(costs, decode_step_s=decode_step_s(server.settings.profile))
        server.configure(time_scale=_choice.time_scale)  # idle still: nothing else has its URL
    except BaseException:
        server.stop()
        raise
    return server


def time_scale_choice() -> ScaleChoice:
    """The time scale the course's server runs at, and why: what was measured on this machine,
    or that `INFERLAB_TIME_SCALE` set it, or that an external server runs in real time.

        print(inferlab.lab.time_scale_choice().explain())
    """
    if external_base_url() is not None:
        return ScaleChoice(1.0, "external server")
    embedded_server()
    assert _choice is not None  # embedded_server() made it
    return _choice


def embedded_model() -> RunningModelServer | None:
    """The embedded server, to turn its knobs; None when an external server is used."""
    return None if external_base_url() is not None else embedded_server()


def time_scale() -> float:
    """Wall seconds per simulated second of the server in use; 1 for an external server,
    which runs in real time. To read a wall time as H100 time, use `model_clock()`."""
    server = embedded_model()
    return 1.0 if server is None else server.time_scale


def model_clock() -> ModelClock:
    """The clock of the server in use, converting wall time to its model ("H100") time: the
    embedded server's, with the scale it reports itself, or real time for an external one.

        clock = inferlab.model_clock()
        print(f"{clock.model_ms(answer.timing.e2e_latency_s):.0f} ms")   # H100 time
    """
    server = embedded_model()
    return REAL_TIME if server is None else server.clock

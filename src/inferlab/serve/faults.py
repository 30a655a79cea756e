"""Faults on purpose: make the embedded server fail or stall a share of its requests.

Real servers fail (5xx when a GPU errors out) and stall (a long garbage collection, a cold
start); a proxy or queue in front of them must still answer every caller. This ASGI middleware
lets tests, the soak benchmark and the tail-latency lesson cause that on demand:

    app = create_app(faults=Faults(fail_rate=0.05, stall_rate=0.02, stall_s=3.0, seed=1))
    PUT /admin/faults {"fail_rate": 0.2}       # change them while it runs
    PUT /admin/faults {"cold_start_s": 2.0}    # go cold: the next request starts a 2 s warm-up
                                               # (loading weights), and everyone waits for it
    PUT /admin/faults {"jitter_s": 0.02}       # a congested network: each request waits a
                                               # random delay, exponential with mean 20 ms
    PUT /admin/faults {"break_rate": 1.0}      # streams fail after `break_after_chunks` chunks:
                                               # the 200 is sent, so the error travels in-stream

Only generation (POST /v1/...) is affected; /v1/models, /health, /metrics and /admin keep
answering, as they do on a real server whose GPU is in trouble.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field, fields

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._http import error_response, has_api_key

BROKEN_STREAM = b'data: {"error": {"message": "injected fault: the accelerator failed mid-answer", '
BROKEN_STREAM += b'"type": "server_error", "param": null, "code": null}}\n\ndata: [DONE]\n\n'

_PROBABILITIES = ("fail_rate", "stall_rate", "break_rate")
_DURATIONS_S = ("stall_s", "cold_start_s", "jitter_s")
_COUNTS = ("break_after_chunks",)


def _check_setting(name: str, value: object) -> None:
    """Raise TypeError/ValueError unless `value` is a valid setting `name`.

    subtle: bool is a subclass of int in Python, so `True` would pass as the number 1; and JSON
    from Python's reader may hold Infinity or NaN, which no probability or duration is.
    """
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"seed must be an integer or null, got {value!r}")
        return
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        return
    if name not in _PROBABILITIES + _DURATIONS_S:
        raise TypeError(f"unknown fault setting {name!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if name in _PROBABILITIES and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    if name in _DURATIONS_S and not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass
class Faults:
    fail_rate: float = 0.0  # share of requests answered with a 500 at once
    stall_rate: float = 0.0  # share of requests held for stall_s before being served
    stall_s: float = 0.0
    cold_start_s: float = 0.0  # set > 0 to go cold: the next request starts a warm-up this long
    jitter_s: float = 0.0  # mean of an exponential delay added to every request
    break_rate: float = 0.0  # share of streams failed part-way, after break_after_chunks chunks
    break_after_chunks: int = 8
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _cold: bool = field(default=False, init=False, repr=False)
    _warm_at: float = field(default=0.0, init=False, repr=False)  # loop time the warm-up ends

    def __post_init__(self) -> None:
        for name in (*_PROBABILITIES, *_DURATIONS_S, *_COUNTS, "seed"):
            _check_setting(name, getattr(self, name))
        self._rng = random.Random(self.seed)

    def update(self, **changes: float) -> None:
        """Change rates while serving; each must be a probability (stall_s: seconds >= 0).
        Passing `cold_start_s` > 0 makes the server cold from now on, as a new replica is.

        All or nothing: every change is checked before any is applied, so a refused update
        (a 400 from PUT /admin/faults) leaves the settings exactly as they were.
        """
        for name, value in changes.items():
            _check_setting(name, value)
        if "seed" in changes:  # the same seed, the same requests hit: repeatable lessons
            seed = changes.pop("seed")
            self.seed = None if seed is None else int(seed)
            self._rng = random.Random(self.seed)
        for name, value in changes.items():
            setattr(self, name, value if name in _COUNTS else float(value))
        if "cold_start_s" in changes:  # only saying so makes it cold, not other changes
            self._cold = self.cold_start_s > 0

    def settings(self) -> dict[str, float | int | None]:
        """Every setting as it now stands, named as PUT /admin/faults names it: what the route
        echoes, so a caller sees the whole state it left behind, not only what it changed."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def jitter_draw_s(self) -> float:
        """This request's network delay: exponential, so most are short and a few are long."""
        return self._rng.expovariate(1 / self.jitter_s) if self.jitter_s > 0 else 0.0

    def breaks(self) -> bool:
        return self.break_rate > 0 and self._rng.random() < self.break_rate

    def draw(self) -> str | None:
        """'fail', 'stall' or None for the next request."""
        roll = self._rng.random()
        if roll < self.fail_rate:
            return "fail"
        if roll < self.fail_rate + self.stall_rate:
            return "stall"
        return None

    def warm_up_left_s(self, now: float) -> float:
        """How long a request arriving at loop time `now` waits for the server to warm up."""
        if self._cold:  # the first request after going cold starts the warm-up
            self._cold, self._warm_at = False, now + self.cold_start_s
        return max(0.0, self._warm_at - now)


class FaultInjection:
    """The middleware. A request without the server's API key passes through untouched, to
    be refused with a 401 by the route: a fault is the GPU's trouble, and an unauthenticated
    caller must neither be stalled by one nor consume a seeded draw meant for others."""

    def __init__(self, app: ASGIApp, faults: Faults, api_key: str | None = None):
        self.app = app
        self.faults = faults
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/v1/")
            and has_api_key(dict(scope["headers"]), self.api_key)
        ):
            fault = self.faults.draw()
            if fault == "fail":
                response = error_response("injected fault: the accelerator failed", 500)
                await response(scope, receive, send)
                return
            if fault == "stall":
                await asyncio.sleep(self.faults.stall_s)  # the stall itself is the point
            warming = self.faults.warm_up_left_s(asyncio.get_running_loop().time())
            if warming > 0:
                await asyncio.sleep(warming)
            jitter_s = self.faults.jitter_draw_s()
            if jitter_s > 0:
                await asyncio.sleep(jitter_s)
            if self.faults.breaks():
                await self._break_stream(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _break_stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass `break_after_chunks` chunks, then end the stream with an error event, as our
        server does when its engine fails mid-answer. A plain (non-streamed) answer is one
        chunk, so it passes whole unless break_after_chunks is 0."""
        passed = 0

        async def send_until_broken(message: Message) -> None:
            nonlocal passed
            if message["type"] == "http.response.body" and message.get("more_body"):
                if passed >= self.faults.break_after_chunks:
                    await send({"type": "http.response.body", "body": BROKEN_STREAM})
                    raise _StreamBroken
                passed += 1
            await send(message)

        try:
            await self.app(scope, receive, send_until_broken)
        except _StreamBroken:  # the app stops at its next chunk: the engine frees the sequence
            return


class _StreamBroken(Exception):
    """Raised into the app's send to stop its stream where the fault cut it."""

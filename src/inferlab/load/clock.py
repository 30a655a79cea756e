"""The model clock: the one place that converts between wall time and the model's time.

The embedded accelerator may run faster than the H100 it simulates (`time_scale=0.1`: ten
times faster), so one wall-clock second the client measures is ten seconds of H100 time. Every
figure a lesson prints "in H100 time" goes through a `ModelClock`, and no notebook multiplies
or divides by a time scale. Against a real server (vLLM, llama.cpp, Ollama) the scale is 1 and
the clock changes nothing, so the same cell is right on both.

    clock = inferlab.model_clock()                   # the scale the server itself reports
    run = await run_load(url, workload, request_rate=8, clock=clock)  # 8 req/s of H100 time
    run.summary().e2e.p50                            # H100 seconds; the records are too
    clock.model_ms(answer.timing.e2e_latency_s)      # one wall-clock latency, in H100 ms
    await clock.sleep(0.15)                          # 150 ms of H100 time
    proxy.configure(batch_wait_timeout_s=clock.wall_s(0.05))  # a knob set in wall seconds

What it leaves out: it converts, it does not correct. Time the laptop added (a busy core, the
HTTP round trip) is scaled up with the rest; the drift guard (`drift.py`) says when that
happened, by comparing against the engine's own account.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ..wire.timing import Timing

T = TypeVar("T", bound=Timing)

# Every moment a record keeps on the wall clock (Timing's, and RequestResult's bookkeeping).
_WALL_MOMENTS = ("sent_s", "done_s", "first_token_s", "scheduled_s", "acked_s")


@dataclass(frozen=True)
class ModelClock:
    """Wall seconds per model second (`time_scale`), and conversions both ways.

    >>> clock = ModelClock(time_scale=0.1)           # ten times faster than an H100
    >>> clock.model_s(0.05), clock.wall_s(2.0), clock.wall_rate(8.0)
    (0.5, 0.2, 80.0)
    >>> clock.model_ms(0.0123)
    123.0
    """

    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")

    @classmethod
    def of_server(
        cls, base_url: str, *, api_key: str | None = None, timeout_s: float = 5.0
    ) -> ModelClock:
        """The clock of the server at `base_url`, from the time scale it reports itself
        (`GET /admin/engine`, behind its `api_key` if it has one); 1 for any server that does
        not (a real one runs in real time)."""
        root = base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            response = httpx.get(f"{root}/admin/engine", headers=headers, timeout=timeout_s)
            scale = float(response.json()["time_scale"]) if response.is_success else 1.0
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            scale = 1.0
        return cls(time_scale=scale)

    # --- durations -----------------------------------------------------------------------

    def model_s(self, wall_s: float) -> float:
        """A wall-clock duration, as model seconds."""
        return round(wall_s / self.time_scale, 12)

    def model_ms(self, wall_s: float) -> float:
        """A wall-clock duration, as model milliseconds (what a lesson prints)."""
        return round(wall_s / self.time_scale * 1000, 9)

    def wall_s(self, model_s: float) -> float:
        """A model duration (a flush interval, a stall, an SLO), as wall seconds: what a
        knob of the running server or a timer in the kernel needs."""
        return round(model_s * self.time_scale, 12)

    # --- rates ---------------------------------------------------------------------------

    def wall_rate(self, per_model_s: float) -> float:
        """A rate per model second (8 requests/s at H100 speed), as a rate per wall second."""
        return round(per_model_s / self.time_scale, 9)

    def model_rate(self, per_wall_s: float) -> float:
        """A rate per wall second the client measured, as a rate per model second."""
        return round(per_wall_s * self.time_scale, 9)

    # --- waiting and records -------------------------------------------------------------

    async def sleep(self, model_s: float) -> None:
        """Wait `model_s` seconds of model time (the arrival of a later caller, a check
        interval): not a wait for something to happen."""
        await asyncio.sleep(self.wall_s(model_s))

    def timing(self, timing: T) -> T:
        """A copy of one request's record with every moment in model seconds, so its
        `ttft_s`, `e2e_latency_s`, `itl_s` and `tpot_s` read as model times. The engine's own
        account is already in model seconds; the copy's says so (`time_scale` 1)."""
        changes: dict[str, Any] = {
            name: self.model_s(value)
            for name in _WALL_MOMENTS
            if isinstance(value := getattr(timing, name, None), float | int)
        }
        changes["token_times_s"] = [self.model_s(t) for t in timing.token_times_s]
        if timing.engine is not None:
            changes["engine"] = dataclasses.replace(timing.engine, time_scale=1.0)
        return dataclasses.replace(timing, **changes)

    def timings(self, timings: list[T]) -> list[T]:
        """`timing()` of each record, in order."""
        return [self.timing(t) for t in timings]


REAL_TIME = ModelClock(time_scale=1.0)  # a real server's clock: wall time is model time

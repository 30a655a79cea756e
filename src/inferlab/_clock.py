"""Clocks for the simulated accelerator: scaled wall time, or virtual time for tests.

Both speak simulated seconds. `ScaledClock(time_scale=0.1)` runs the accelerator ten times faster
than the H100 it imitates; `VirtualClock` never waits at all, so a test can assert exact times.
"""

from __future__ import annotations

import asyncio
import time


class ScaledClock:
    """Simulated time = wall time / time_scale, counted from the clock's creation."""

    def __init__(self, time_scale: float = 1.0):
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) / self.time_scale

    async def sleep_until(self, when_s: float) -> None:
        # An absolute deadline, not a duration: oversleeping one step shortens the next wait,
        # so timing errors do not add up over thousands of steps.
        delay = self._origin + when_s * self.time_scale - time.monotonic()
        await asyncio.sleep(max(delay, 0.0))


class VirtualClock:
    """Time that jumps straight to each deadline: the step loop runs as fast as Python can."""

    time_scale = 0.0

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when_s: float) -> None:
        self._now = max(self._now, when_s)
        await asyncio.sleep(0)  # still yield, so callers and the server get their turn

"""Clocks: scaled or virtual time for the simulated accelerator, timers for the batcher.

The accelerator's clocks speak simulated seconds. `ScaledClock(time_scale=0.1)` runs it ten times
faster than the H100 it imitates; `VirtualClock` never waits at all, so tests assert exact times.

The batcher's clocks only need "now" and "call me at": `LoopClock` is the event loop's own, and
`ManualClock` moves only when a test calls `advance()`, firing due timers in order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class ScaledClock:
    """Simulated time = wall time / time_scale, counted from the clock's creation."""

    def __init__(self, time_scale: float = 1.0):
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) / self.time_scale

    def rescale(self, time_scale: float) -> None:
        """Run at a new speed from now on. Simulated time carries on from where it is, so no
        moment the engine has recorded jumps."""
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        now_s = self.now()
        self.time_scale = time_scale
        self._origin = time.monotonic() - now_s * time_scale

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


# ---------------------------------------------------------------------------------------------
# Timer clocks for the MicroBatcher


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class TimerClock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable: ...


class LoopClock:
    """The running event loop's monotonic clock and timers."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_at(when, callback)


class _ManualTimer:
    def __init__(self, callback: Callable[[], None]):
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class ManualClock:
    """Time that moves only when told: `advance(0.01)` fires every timer due by then, in order.

    Callbacks run inside advance(); tasks they start run when the test next awaits.
    """

    def __init__(self, start: float = 0.0):
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Cancellable:
        timer = _ManualTimer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    @property
    def pending_timers(self) -> int:
        """Timers set and neither fired nor cancelled."""
        return sum(timer.callback is not None for _, _, timer in self._timers)

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if timer.callback is not None:
                timer.callback()
        self._now = target

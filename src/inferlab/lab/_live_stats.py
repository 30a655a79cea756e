"""Sliding-window statistics for live views: what happened in the last few seconds.

Thread-safe, because the load runs on its own thread and the dashboard reads from the kernel's:

    window = LiveWindow(window_s=5.0)
    window.add(latency_s=0.12, ok=True)          # from the load thread, per finished request
    window.snapshot().p99_s                      # from the UI, twice a second
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..load.metrics import percentile


@dataclass(frozen=True)
class LiveSnapshot:
    throughput: float  # completed requests per second over the window
    p50_s: float
    p99_s: float
    completed: int  # in the window
    dropped: int  # failed or refused, in the window
    dropped_total: int  # since the start


class LiveWindow:
    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._events: deque[tuple[float, float, bool]] = deque()  # (time, latency, ok)
        self._dropped_total = 0
        self._lock = threading.Lock()
        self._started = clock()

    def add(self, latency_s: float, ok: bool) -> None:
        with self._lock:
            self._events.append((self._clock(), latency_s, ok))
            self._dropped_total += not ok

    def reset(self) -> None:
        with self._lock:
            self._events.clear()
            self._dropped_total = 0
            self._started = self._clock()

    def snapshot(self) -> LiveSnapshot:
        """Requests finished in the last `window_s` seconds (or since reset, if sooner).

        Textbook: window 5 s, 10 s since start, 20 requests done in the last 5 s -> 4 req/s.
        """
        now = self._clock()
        with self._lock:
            while self._events and self._events[0][0] < now - self.window_s:
                self._events.popleft()
            events = list(self._events)
            dropped_total = self._dropped_total
        span = min(self.window_s, now - self._started)
        latencies = [latency for _, latency, ok in events if ok]
        return LiveSnapshot(
            throughput=len(latencies) / span if span > 0 else 0.0,
            p50_s=percentile(latencies, 50) if latencies else math.nan,
            p99_s=percentile(latencies, 99) if latencies else math.nan,
            completed=len(latencies),
            dropped=len(events) - len(latencies),
            dropped_total=dropped_total,
        )


class CounterWindow:
    """The last `window_s` seconds of a cumulative Counter (batch sizes, flush reasons)."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._history: deque[tuple[float, Counter[Any]]] = deque()

    def update(self, cumulative: Counter[Any], *, restart: bool = False) -> Counter[Any]:
        """Record the counter now; return what it gained over the window (or since restart)."""
        now = self._clock()
        if restart:
            self._history.clear()
        self._history.append((now, Counter(cumulative)))
        while len(self._history) > 1 and self._history[1][0] <= now - self.window_s:
            self._history.popleft()
        gained = Counter(cumulative)
        gained.subtract(self._history[0][1])
        return +gained  # drop zero and negative counts

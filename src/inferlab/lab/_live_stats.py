"""Sliding-window statistics for live views: what happened in the last few seconds.

Thread-safe, because the load runs on its own thread and the dashboard reads from the kernel's:

    window = LiveWindow(window_s=5.0)
    key = window.sent(lag_s=0.001)               # from the load thread, per request sent
    window.add(latency_s=0.12, ok=True, key=key)  # ... and when its answer arrives
    window.snapshot().p99_s                      # from the UI, twice a second

The p99 counts the requests still waiting at their age: over finished requests alone, a queue
that grows without bound would show a steady p99 (the finished ones are the lucky ones), and
an overloaded setting would look fine. Sends are counted too, with how late the load generator
sent each one: a busy laptop that cannot send the rate asked for says so.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..load.clock import ModelClock
from ..load.metrics import percentile


@dataclass(frozen=True)
class LiveSnapshot:
    throughput: float  # completed requests per second over the window
    p50_s: float  # over the window's finished requests and those still waiting, at their age
    p99_s: float  # likewise
    completed: int  # in the window
    dropped: int  # failed or refused, in the window
    dropped_total: int  # since the start
    sent_rate: float = math.nan  # requests per second the load generator really sent
    # Of the arrivals its random schedule held for these sends, the share sent on time (the
    # sends' rate over the schedule's own rate, skipped arrivals counted): 1 when it keeps up.
    # Against the schedule, not the nominal rate: a few seconds of random arrivals are often
    # 10% off their nominal rate, and that is the load's doing, not the load generator's.
    on_schedule: float = 1.0
    lag_p99_s: float = math.nan  # how late it sent them against its schedule, p99
    waiting: int = 0  # sent, not yet answered
    oldest_waiting_s: float = 0.0  # the age of the oldest of those

    @property
    def samples(self) -> int:
        """Requests behind the percentiles: finished in the window, and still waiting."""
        return self.completed + self.waiting

    def in_model_time(self, clock: ModelClock) -> LiveSnapshot:
        """The same window with its times and rates in the model's ("H100") time."""
        return replace(
            self,
            throughput=clock.model_rate(self.throughput),
            p50_s=clock.model_s(self.p50_s),
            p99_s=clock.model_s(self.p99_s),
            sent_rate=clock.model_rate(self.sent_rate),
            lag_p99_s=clock.model_s(self.lag_p99_s),
            oldest_waiting_s=clock.model_s(self.oldest_waiting_s),
        )


class LiveWindow:
    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._events: deque[tuple[float, float, bool]] = deque()  # (time, latency, ok)
        self._sends: deque[tuple[float, float]] = deque()  # (time, lag behind the schedule)
        self._skipped: deque[tuple[float, int]] = deque()  # (time, arrivals never sent)
        self._waiting: dict[int, float] = {}  # request key -> when it was sent
        self._next_key = 0
        self._dropped_total = 0
        self._lock = threading.Lock()
        self._started = clock()

    def sent(self, lag_s: float = 0.0) -> int:
        """A request went out, `lag_s` later than scheduled; returns its key for `add()`."""
        with self._lock:
            now = self._clock()
            self._sends.append((now, lag_s))
            key = self._next_key
            self._next_key += 1
            self._waiting[key] = now
            return key

    def skipped(self, arrivals: int) -> None:
        """The load generator gave up catching up: `arrivals` of its schedule were never sent."""
        with self._lock:
            self._skipped.append((self._clock(), arrivals))

    def add(self, latency_s: float, ok: bool, key: int | None = None) -> None:
        """A request finished (or was refused: `ok` False) after `latency_s`."""
        with self._lock:
            self._events.append((self._clock(), latency_s, ok))
            self._dropped_total += not ok
            if key is not None:
                self._waiting.pop(key, None)

    def forget(self, key: int) -> None:
        """A request that will never finish (its caller hung up): no longer waiting."""
        with self._lock:
            self._waiting.pop(key, None)

    def reset(self, *, keep_waiting: bool = False) -> None:
        """Start counting afresh; with `keep_waiting`, requests already sent and not yet
        answered stay counted (at their age), as a measurement after a warm-up needs."""
        with self._lock:
            self._events.clear()
            self._sends.clear()
            self._skipped.clear()
            if not keep_waiting:
                self._waiting.clear()
            self._dropped_total = 0
            self._started = self._clock()

    def snapshot(self) -> LiveSnapshot:
        """Requests finished in the last `window_s` seconds (or since reset, if sooner).

        Textbook: window 5 s, 10 s since start, 20 requests done in the last 5 s -> 4 req/s.
        """
        now = self._clock()
        with self._lock:
            for queue in (self._events, self._sends, self._skipped):
                while queue and queue[0][0] < now - self.window_s:
                    queue.popleft()
            events, sends = list(self._events), list(self._sends)
            skipped = sum(n for _, n in self._skipped)
            ages = [now - sent_s for sent_s in self._waiting.values()]
            dropped_total = self._dropped_total
        span = min(self.window_s, now - self._started)
        latencies = [latency for _, latency, ok in events if ok]
        tail = latencies + ages  # subtle: the queue counts, at its age (see the module's note)
        return LiveSnapshot(
            throughput=len(latencies) / span if span > 0 else 0.0,
            p50_s=percentile(tail, 50),
            p99_s=percentile(tail, 99),
            completed=len(latencies),
            dropped=len(events) - len(latencies),
            dropped_total=dropped_total,
            sent_rate=len(sends) / span if span > 0 else 0.0,
            on_schedule=_on_schedule(sends, skipped),
            lag_p99_s=percentile([lag for _, lag in sends], 99),
            waiting=len(ages),
            oldest_waiting_s=max(ages, default=0.0),
        )


def _on_schedule(sends: list[tuple[float, float]], skipped: int) -> float:
    """Sends per second over the schedule's arrivals per second (each due at send - lag).

    Textbook: 11 sends 1 s apart, each 0.1 s later than its schedule than the last one (lags
    0, 0.1, ... 1.0): sent over 10 s, due over 9 s -> on schedule 9/10 = 90%.
    """
    if len(sends) < 2:
        return 1.0
    sent_span = sends[-1][0] - sends[0][0]
    due_span = (sends[-1][0] - sends[-1][1]) - (sends[0][0] - sends[0][1])
    if sent_span <= 0 or due_span <= 0:
        return 1.0
    sent_rate = (len(sends) - 1) / sent_span
    due_rate = (len(sends) - 1 + skipped) / due_span
    return min(1.0, sent_rate / due_rate)


class History:
    """The last `length` values of each figure, one per refresh, for sparklines."""

    def __init__(self, length: int = 20):
        self.length = length
        self._values: dict[str, deque[float]] = {}

    def add(self, **figures: float) -> None:
        for name, value in figures.items():
            self._values.setdefault(name, deque(maxlen=self.length)).append(value)

    def of(self, name: str) -> list[float]:
        return list(self._values.get(name, ()))

    def clear(self) -> None:
        self._values.clear()


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

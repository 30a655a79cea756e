"""How deep the proxy's queue may grow: as deep as the upstream can drain within the deadline.

A queue of N requests in front of an upstream that finishes λ requests a second takes N/λ
seconds to drain (Little's law). A request that waits longer than its `request_timeout_s` gets a
504 after holding a place for nothing, so a queue deeper than λ × timeout only turns a fast 429
into a slow 504. We measure λ as the proxy runs and bound the queue by it:

    λ = 27 req/s, request_timeout_s = 300  ->  27 × 300 × 0.5 = 4,050 requests

The factor 0.5 (`QUEUE_TIME_FRACTION`) keeps a margin: λ is an estimate, and a request still has
to run after it leaves the queue. Until a window with a queue standing was measured, the bound
is at least `start` (an idle upstream shows only a lower bound on what it can do); it never goes
below `floor` (a few batches, so a stalled upstream still gets a queue) nor above `ceiling`.
Left out: per-tenant fairness, and shedding by priority.
"""

from __future__ import annotations

QUEUE_TIME_FRACTION = 0.5  # of request_timeout_s that an accepted request may spend queued
WINDOW_S = 1.0  # how often the completion rate is measured
SMOOTHING = 0.3  # weight of the newest window in the moving estimate


class QueueBound:
    """A moving estimate of completed requests per second, and the queue bound it implies.

    >>> bound = QueueBound(request_timeout_s=300, floor=32)
    >>> bound.observe(0.0, completed=0, queued=10); bound.observe(1.0, completed=27, queued=10)
    >>> bound.rate_per_s, bound.limit
    (27.0, 4050)
    """

    def __init__(
        self,
        *,
        request_timeout_s: float,
        floor: int = 32,
        start: int = 256,
        ceiling: int = 10_000,
    ):
        if not 1 <= floor <= start <= ceiling:
            raise ValueError(
                f"need 1 <= floor <= start <= ceiling, got {floor}, {start}, {ceiling}"
            )
        self.request_timeout_s = request_timeout_s
        self.floor, self.start, self.ceiling = floor, start, ceiling
        self.rate_per_s: float | None = None  # None until one window was measured
        self._measured_busy = False  # a window ended with a queue standing
        self._window: tuple[float, int] | None = None  # (when it opened, completed by then)

    @property
    def limit(self) -> int:
        """The most requests that may wait now."""
        if self.rate_per_s is None:
            return self.start
        depth = int(self.rate_per_s * self.request_timeout_s * QUEUE_TIME_FRACTION)
        bounded = max(self.floor, min(self.ceiling, depth))
        return bounded if self._measured_busy else max(self.start, bounded)

    def observe(self, now_s: float, *, completed: int, queued: int) -> None:
        """Take a sample: `completed` is the running count of requests answered with a result,
        `queued` how many wait now. Cheap: call it on every submission."""
        if self._window is None:
            self._window = (now_s, completed)
            return
        opened_s, completed_then = self._window
        if now_s - opened_s < WINDOW_S:
            return
        self._window = (now_s, completed)
        if now_s - opened_s > 10 * WINDOW_S:
            return  # a quiet spell, then a burst: such a long window says little about either
        measured = (completed - completed_then) / (now_s - opened_s)
        if queued > 0:
            # A queue stands: the upstream was busy, so what it finished is what it can finish.
            if self.rate_per_s is None or not self._measured_busy:
                self.rate_per_s = measured
            else:
                self.rate_per_s += SMOOTHING * (measured - self.rate_per_s)
            self._measured_busy = True
        else:
            # subtle: with no queue the upstream may have idled, so the window shows only a
            # lower bound on its capacity: it may raise the estimate, never lower it.
            self.rate_per_s = max(self.rate_per_s or 0.0, measured)

"""Exercises for lesson 01: synchronous inference, percentiles and Little's law."""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between the two nearest ranks, as
    numpy does by default: sort, take rank (n - 1) * q / 100, interpolate. Empty: nan.

    percentile([1, 2, 3, 4], 50) -> 2.5;  percentile([5], 99) -> 5
    """
    # BEGIN SOLUTION (find where q falls between two sorted values, and interpolate)
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    # END SOLUTION


def threads_needed(request_rate: float, latency_s: float) -> int:
    """How many threads a synchronous client needs to sustain `request_rate` requests per second
    when each takes `latency_s`: Little's law, L = λW, rounded up to whole threads.

    threads_needed(100, 0.3) -> 30
    """
    # BEGIN SOLUTION (Little's law, in whole threads; beware a float just above a whole number)
    return math.ceil(round(request_rate * latency_s, 9))
    # END SOLUTION

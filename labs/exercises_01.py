"""Exercises for lesson 01: synchronous inference, percentiles and Little's law."""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between the two nearest ranks, as
    numpy does by default: sort, take rank (n - 1) * q / 100, interpolate. Empty: nan.

    percentile([1, 2, 3, 4], 50) -> 2.5;  percentile([5], 99) -> 5
    """
    # TODO: find where q falls between two sorted values, and interpolate
    raise NotImplementedError(
        'TODO in labs/exercises_01.py: find where q falls between two sorted values, and interpolate'
    )


def threads_needed(request_rate: float, latency_s: float) -> int:
    """How many threads a synchronous client needs to sustain `request_rate` requests per second
    when each takes `latency_s`: Little's law, L = λW, rounded up to whole threads.

    threads_needed(100, 0.3) -> 30
    """
    # TODO: Little's law, in whole threads; beware a float just above a whole number
    raise NotImplementedError(
        "TODO in labs/exercises_01.py: Little's law, in whole threads; beware a float just above a whole number"
    )

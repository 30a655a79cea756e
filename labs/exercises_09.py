"""Exercises for lesson 09: the decision guide as code."""

from __future__ import annotations


def choose_mode(*, person_waiting: bool, reads_as_it_arrives: bool, long_or_bursty: bool) -> str:
    """The mode for a workload ("stream", "sync" or "async"), as the lesson's guide says: long or
    bursty work that nobody waits on goes to a job API; a person reading as text arrives wants a
    stream; everything else is simplest synchronous."""
    # TODO: async if long/bursty and nobody waits; stream if a reader; else sync
    raise NotImplementedError(
        'TODO in labs/exercises_09.py: async if long/bursty and nobody waits; stream if a reader; else sync'
    )


def max_throughput(in_flight: int, latency_s: float) -> float:
    """The most requests per second a client keeping `in_flight` requests at the server can
    complete, when each takes `latency_s` (Little's law, solved for λ)."""
    # TODO: lambda = L / W
    raise NotImplementedError(
        'TODO in labs/exercises_09.py: lambda = L / W'
    )

"""Exercises for lesson 01: synchronous inference, percentiles, Little's law, a thread pool."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from inferlab.engine import Profile


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


# --- Exercise 3, checked: where did the requests wait? ------------------------------------------
WHERE_THEY_WAITED = ("in the server", "in the client", "on the network")


def where_they_waited() -> tuple[str, str]:
    """Exercise 3 as an answer the grader reads: with half the threads, where did the requests
    wait? Return (one of WHERE_THEY_WAITED, your reason in a sentence or two)."""
    # TODO: choose a place from what the run printed, and say in your own words why
    raise NotImplementedError(
        'TODO in labs/exercises_01.py: choose a place from what the run printed, and say in your own words why'
    )


# --- Exercise 4: a synchronous client, built ----------------------------------------------------
class Sent(NamedTuple):
    index: int
    answer: str
    waited_s: float  # from the start of the run until a thread took this request
    service_s: float  # inside send(): the request itself


def send_all(
    send: Callable[[int], str],
    num_requests: int,
    threads: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Sent]:
    """Send requests 0 to num_requests - 1, all ready at once, through a pool of `threads`
    threads, each blocking in send(index) until its answer comes. Returns one Sent per request,
    in request order, with how long it waited for a thread and how long send() took, both read
    from `clock`.

    send_all(lambda i: f"answer {i}", 3, threads=2) -> [Sent(0, 'answer 0', ...), ...]
    """
    # TODO: a pool of that many threads; read the clock when a thread takes a request
    raise NotImplementedError(
        'TODO in labs/exercises_01.py: a pool of that many threads; read the clock when a thread takes a request'
    )


# --- Exercise 5: predict, then measure ----------------------------------------------------------
def predicted_throughput(
    profile: Profile, users: int, prompt_tokens: int, output_tokens: int
) -> float:
    """Requests per second that `users` callers get when they all send at once and the server
    batches them: Little's law, with the time one such round takes on `profile` (its
    prefill_ms and decode_ms, lesson 00). Graded within 10% of simulate().

    predicted_throughput(profile, 1, 64, 32) -> about 3.7
    """
    # TODO: how long does one round take for all of them? then how many finish a second
    raise NotImplementedError(
        'TODO in labs/exercises_01.py: how long does one round take for all of them? then how many finish a second'
    )


# --- Exercise 6: read a plot --------------------------------------------------------------------
# The notebook plots these six requests through a client with two threads, all ready at once;
# each takes this long once a thread sends it.
PLOTTED_SERVICE_S = [0.9, 0.3, 0.2, 0.3, 0.2, 0.1]
PLOTTED_THREADS = 2


def who_was_blocked() -> tuple[int, int]:
    """Read from the notebook's plot: which request waited longest for a thread, and which
    request was holding the thread it finally got? Return (blocked, holder), request numbers
    as the plot labels them."""
    # TODO: read the light bars: the longest wait, and who freed the thread it got
    raise NotImplementedError(
        'TODO in labs/exercises_01.py: read the light bars: the longest wait, and who freed the thread it got'
    )

"""Lesson 01's exercises (labs/exercises_01.py): percentiles, Little's law, a thread pool."""

from __future__ import annotations

import heapq
import math
import random
import threading

import pytest

from inferlab import get_profile, simulate
from inferlab.load.metrics import percentile as reference_percentile
from tests.lab.grading import broke, close_to, expect, explained

pytestmark = pytest.mark.lesson("01")


@pytest.fixture
def ex(lab):
    return lab("exercises_01")


def test_percentile_interpolates_like_numpy(ex):
    """percentile() interpolates between the two nearest ranks, as numpy does."""
    look = "the rank is a fraction between two sorted values: interpolate, do not round it"
    expect(ex.percentile([1, 2, 3, 4], 50), 2.5, given="p50 of [1, 2, 3, 4]", look=look)
    expect(ex.percentile([5], 99), 5, given="p99 of [5]", look="a single value is every percentile")
    empty = ex.percentile([], 50)
    if not (isinstance(empty, float) and math.isnan(empty)):
        broke(percentile_doc(), f"p50 of [] should be nan, got {empty!r}.", "the empty case")
    values = [random.Random(seed).expovariate(1.0) for seed in range(101)]
    for q in (0, 10, 50, 90, 99, 100):
        expect(
            ex.percentile(values, q),
            reference_percentile(values, q),
            given=f"p{q} of 101 unsorted values",
            look=look + "; sort first",
        )


def percentile_doc() -> str:
    return "percentile() interpolates between the two nearest ranks, as numpy does."


def test_threads_needed_is_littles_law_rounded_up(ex):
    """threads_needed() is the number in flight, in whole threads, enough to keep up."""
    look = "how many requests are in flight at once at that rate and latency, in whole threads"
    expect(ex.threads_needed(100, 0.3), 30, given="100 requests/s of 0.3 s each", look=look)
    expect(
        ex.threads_needed(10, 0.25),
        3,
        given="10 requests/s of 0.25 s each",
        look="2.5 threads cannot exist, and 2 cannot keep up",
    )


# --- issue 18: a checked answer, a thread pool, a prediction, a plot (h18b) --------------------
def test_where_they_waited(ex):
    """where_they_waited() puts the wait in the right place, and says why."""
    explained(
        ex.where_they_waited(),
        choices=ex.WHERE_THEY_WAITED,
        expected="in the client",
        ideas={
            "that each thread is held for the whole of its request (so few are in flight)": (
                "held",
                "hold",
                "block",
                "busy",
                "occupied",
                "in flight",
                "at once",
                "at a time",
                "concurren",
            ),
            "what that does to the requests per second": (
                "throughput",
                "per second",
                "/s",
                "rate",
                "fewer",
                "cap",
                "limit",
                "half",
            ),
        },
        given="with half the threads",
    )


class VirtualClock:
    """A clock that only send() moves: time passes inside a request, nowhere else."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_send_all_answers_in_order_and_times_the_wait(ex):
    """send_all() answers every request once, in order, and splits its wait from its service."""
    clock, durations, calls = VirtualClock(), [0.5, 0.25, 1.0, 0.25], []

    def send(index: int) -> str:
        calls.append(index)
        clock.now_s += durations[index]
        return f"answer {index}"

    sent = ex.send_all(send, len(durations), 1, clock)
    got = [(s.index, s.answer) for s in sent] if isinstance(sent, list) else sent
    expect(
        got,
        [(i, f"answer {i}") for i in range(4)],
        given="four requests, one thread: (index, answer) of each Sent",
        look="one Sent per request, in request order, whatever order they finish in",
    )
    if sorted(calls) != [0, 1, 2, 3]:
        broke(
            test_send_all_answers_in_order_and_times_the_wait.__doc__,
            f"send() was called for requests {calls}.",
            "each request is sent exactly once",
        )
    expect(
        [(s.waited_s, s.service_s) for s in sent],
        [(0.0, 0.5), (0.5, 0.25), (0.75, 1.0), (1.75, 0.25)],
        given="one thread, requests of 0.5, 0.25, 1 and 0.25 s: (waited_s, service_s) of each",
        look="with one thread a request waits until the earlier ones are done; read the clock "
        "when the run starts, when a thread takes a request, and when send() returns",
    )


class PoolProbe:
    """A send() that sees how many requests are in flight together.

    Every request waits at a barrier until `threads` of them are in flight: a pool with fewer
    threads never gets there, and the barrier times out. With one thread, the first request
    also waits a moment for a second one, which would be one too many."""

    def __init__(self, threads: int) -> None:
        self.threads, self.lock = threads, threading.Lock()
        self.in_flight = self.most = 0
        self.together = threading.Barrier(threads, timeout=3)
        self.too_many = threading.Event()
        self.short: list[int] = []

    def send(self, index: int) -> str:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight > self.threads:
                self.too_many.set()
        try:
            if self.threads == 1 and index == 0:
                self.too_many.wait(timeout=1)
            self.together.wait()
        except threading.BrokenBarrierError:
            self.short.append(index)
        with self.lock:
            self.in_flight -= 1
        return "ok"


def test_send_all_keeps_threads_requests_in_flight(ex):
    """send_all() keeps as many requests in flight as it has threads, and no more."""
    for threads in (1, 3):
        probe = PoolProbe(threads)
        ex.send_all(probe.send, 3 * threads, threads)
        if probe.short:
            broke(
                test_send_all_keeps_threads_requests_in_flight.__doc__,
                f"with {threads} threads, fewer than {threads} requests were ever in flight "
                "together.",
                "a pool of `threads` threads, each request sent from one of them",
            )
        if probe.most > threads:
            broke(
                test_send_all_keeps_threads_requests_in_flight.__doc__,
                f"with {threads} thread(s), {probe.most} requests were in flight at once.",
                "the pool's size: a synchronous client has one request in flight per thread",
            )


def test_predicted_throughput_matches_the_simulator(ex):
    """predicted_throughput() is within 10% of what simulate() measures, at every batch size
    (the engine's steps: the exercise leaves out the API server's cost, so the simulator does)."""
    profile = get_profile("h100-llama3-8b")
    for users in (1, 16, 64):
        finished = simulate([(0.0, 64, 32)] * users, profile, api_server_cost=0)
        measured = users / max(sequence.finished_s for sequence in finished)
        predicted = ex.predicted_throughput(profile, users, 64, 32)
        if not close_to(predicted, measured, 0.10):
            broke(
                test_predicted_throughput_matches_the_simulator.__doc__,
                f"{users} users sending 64-token prompts for 32 tokens: you predicted "
                f"{shown_number(predicted)} requests/s, simulate() measures {measured:.1f} "
                "(tolerance 10%).",
                "one round is a prefill of every prompt together, then a decode step per "
                "further token with all of them in the batch; Little's law turns it into a rate",
            )


def shown_number(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else repr(value)


def waits_for_a_thread(service_s: list[float], threads: int) -> list[tuple[float, int | None]]:
    """For each request, all ready at once: (how long it waited, the request whose thread it
    got, None for a thread nobody had used)."""
    free = [(0.0, slot, None) for slot in range(threads)]  # (free at, thread, last request)
    waits = []
    for index, seconds in enumerate(service_s):
        free_at, slot, previous = heapq.heappop(free)
        waits.append((free_at, previous))
        heapq.heappush(free, (free_at + seconds, slot, index))
    return waits


def test_who_was_blocked(ex):
    """who_was_blocked() names the request that waited longest for a thread, and its holder."""
    waits = waits_for_a_thread(ex.PLOTTED_SERVICE_S, ex.PLOTTED_THREADS)
    longest = max(range(len(waits)), key=lambda index: waits[index][0])
    expect(
        ex.who_was_blocked(),
        (longest, waits[longest][1]),
        given="the plotted requests, (blocked, holder)",
        look="the longest light bar is the longest wait for a thread; it ends when the thread "
        "it gets is freed, by the request whose dark bar ends there",
    )

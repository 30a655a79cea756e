"""Exercises for lesson 02: retries, webhooks that are signed and may come twice, and how often
to poll."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import random
import time
from collections.abc import Awaitable, Callable


def backoff_bound_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The longest wait after failed attempt number `attempt` (1 for the first): base_s doubled
    for each earlier failure, never more than cap_s. (Full jitter then draws uniformly between 0
    and this bound.)

    backoff_bound_s(1, 0.5, 4) -> 0.5;  (3, 0.5, 4) -> 2.0;  (10, 0.5, 4) -> 4.0
    """
    # TODO: double from base_s at each failure, never past cap_s
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: double from base_s at each failure, never past cap_s'
    )


def is_retryable(status: int) -> bool:
    """Should a job whose upstream answered `status` be tried again? Yes for 408, 409, 429 and
    every 5xx (they may go better later); no for any other 4xx (the request itself is wrong)."""
    # TODO: which statuses say 'try later', and which 'this request is wrong'?
    raise NotImplementedError(
        "TODO in labs/exercises_02.py: which statuses say 'try later', and which 'this request is wrong'?"
    )


def signature_is_valid(secret: str, body: bytes, header: str, now: float) -> bool:
    """Check an `Inferlab-Signature: t=<unix time>,v1=<hex>` header: v1 must be the hex
    HMAC-SHA256, keyed with `secret`, of b"<t>." + body, and t at most 300 s away from `now`.
    Compare with hmac.compare_digest (a plain == leaks, by its timing, how much matched).
    Anything malformed is simply invalid."""
    # TODO: parse t and v1; recompute the HMAC; compare in constant time; check age
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: parse t and v1; recompute the HMAC; compare in constant time; check age'
    )


async def call_with_retries(
    send: Callable[[], Awaitable[int]],
    *,
    max_attempts: int,
    base_s: float,
    cap_s: float,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Call `send()` (it returns an HTTP status) until it succeeds (below 400), fails in a way
    that retrying cannot fix, or has been called max_attempts times; return the last status.
    Between attempts, await sleep(d) with full jitter: d drawn by rng.uniform(0, bound), the
    bound from backoff_bound_s(). Never sleep after the last attempt: nobody is waiting for it.

    A server down for two attempts: statuses 503, 503, 200 -> 200, after two sleeps.
    """
    # TODO: a loop of attempts: stop on success, on a hopeless status, or when out
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: a loop of attempts: stop on success, on a hopeless status, or when out'
    )


class WebhookReceiver:
    """Receives the job service's deliveries, each a JSON body {"event_id": ..., ...} with an
    Inferlab-Signature header. Senders retry until they hear 200, so the same event can come
    twice or more: it must be processed once. `processed` lists each event processed, in order.
    """

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.clock = clock
        self.processed: list[dict] = []
        self._seen: set[str] = set()

    def receive(self, body: bytes, header: str) -> int:
        """401 for a delivery whose signature is not valid (it is not processed); otherwise 200,
        having processed it (appended its parsed body to self.processed) unless its event_id
        was processed before. What does a forged delivery with a real event's id do to the real
        one when it arrives later?"""
        # TODO: check the signature first; remember only the events you processed
        raise NotImplementedError(
            'TODO in labs/exercises_02.py: check the signature first; remember only the events you processed'
        )


# --- choosing a polling interval: predict the cost, then measure it ---------------------------


def polling_cost(job_s: float, interval_s: float) -> tuple[int, float]:
    """A client submits a job that takes job_s seconds, asks for it at once and then every
    interval_s, and stops at the first answer that says it finished (a poll at the very moment
    it finishes sees it finished). Ignoring round trips: (how many polls it sent, how long
    after the job finished the last poll came, in seconds).

    polling_cost(0.25, 0.1) -> (4, 0.05): polls at 0, 0.1, 0.2 and 0.3 s.
    """
    # TODO: which poll is the first at or after job_s? count the polls up to it
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: which poll is the first at or after job_s? count the polls up to it'
    )


def choose_interval(
    job_times_s: list[float], intervals_s: list[float], max_mean_extra_s: float
) -> float | None:
    """The polling interval, of `intervals_s`, that sends the fewest polls in all for jobs
    taking `job_times_s`, among those whose mean extra latency (the second number of
    polling_cost(), averaged over the jobs) is at most max_mean_extra_s; None if none is.
    """
    # TODO: price each candidate on these very jobs; keep those within the target
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: price each candidate on these very jobs; keep those within the target'
    )


# --- an idempotent front door: a resubmission returns the same job ----------------------------


class KeyReused(Exception):
    """The same Idempotency-Key came with a different request (the job API answers 409)."""


class IdempotentFrontDoor:
    """The job API's front door, reduced to its idempotency rule. A client whose
    acknowledgement was lost cannot know whether its job exists, so it submits again with the
    same Idempotency-Key; the door must then answer with the job it made the first time.
    `jobs` maps each job id made to its request (the queue, reduced to a dict); `new_id()`
    names a new job.
    """

    def __init__(self, new_id: Callable[[], str]) -> None:
        self.new_id = new_id
        self.jobs: dict[str, dict] = {}
        self._by_key: dict[str, str] = {}

    def submit(self, request: dict, key: str | None = None) -> tuple[str, bool]:
        """(the job's id, whether it is a replay of an earlier submission). Without a key every
        submission is a new job. With a key seen before: the job made then, if the request is
        the same; raise KeyReused if it is not (the client reused a key by mistake)."""
        # TODO: look the key up first; what must match before you answer with that job?
        raise NotImplementedError(
            'TODO in labs/exercises_02.py: look the key up first; what must match before you answer with that job?'
        )


# --- A checked answer, in your own words -------------------------------------------------------
WITHOUT_JITTER = ("a thundering herd", "lost jobs", "duplicate results")


def why_jitter() -> tuple[str, str]:
    """A thousand jobs fail together; what happens without jitter? Return (one of WITHOUT_JITTER,
    your reason in a sentence or two of your own): the grader checks the choice, and reads your
    reason for the ideas that make it right."""
    # TODO: choose from what you measured, and say why in your own words
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: choose from what you measured, and say why in your own words'
    )

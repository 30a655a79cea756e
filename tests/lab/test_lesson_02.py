"""Lesson 02's exercises (labs/exercises_02.py): retries and webhook signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random

import pytest

from tests.lab.grading import broke, expect, explained

pytestmark = pytest.mark.lesson("02")


@pytest.fixture
def ex(lab):
    return lab("exercises_02")


def test_backoff_doubles_up_to_the_cap(ex):
    """backoff_bound_s() starts at base_s, doubles after each failure, and stops at cap_s."""
    got = [ex.backoff_bound_s(attempt, 0.5, 4.0) for attempt in range(1, 7)]
    expect(
        got,
        [0.5, 1.0, 2.0, 4.0, 4.0, 4.0],
        given="attempts 1 to 6 with base 0.5 s and cap 4 s",
        look="the first failure waits base_s itself; each later one twice the last",
    )


@pytest.mark.parametrize(
    ("status", "retry"),
    [(500, True), (503, True), (429, True), (408, True), (409, True), (400, False), (404, False)],
)
def test_retry_server_trouble_not_bad_requests(ex, status, retry):
    """is_retryable() retries what may go better later, and only that."""
    expect(
        ex.is_retryable(status),
        retry,
        given=f"status {status}",
        look="which statuses say 'try later' (the server, a timeout, a limit, a conflict) and "
        "which say 'this request is wrong'",
    )


def sign(secret: str, body: bytes, t: int) -> str:
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def test_signature_check(ex):
    """signature_is_valid() accepts a genuine, fresh signature and nothing else."""
    body, secret, t = b'{"id":"job-1"}', "s3cret", 1_000_000
    header = sign(secret, body, t)
    cases = [
        ((secret, body, header, t + 5), True, "a genuine signature, 5 s old"),
        (("other", body, header, t + 5), False, "the same header checked with another secret"),
        ((secret, body + b" ", header, t + 5), False, "a body changed after signing"),
        ((secret, body, header, t + 301), False, "a genuine signature 301 s old (a replay)"),
        ((secret, body, "nonsense", t), False, "a malformed header"),
        ((secret, body, "t=abc,v1=00", t), False, "a header whose time is not a number"),
    ]
    for args, valid, given in cases:
        try:
            got = ex.signature_is_valid(*args)
        except NotImplementedError:
            raise
        except Exception as exc:
            broke(
                signature_doc,
                f"{given}: your check raised {type(exc).__name__}: {exc}.",
                "anything malformed is simply invalid: return False, raise nothing",
            )
        expect(got, valid, given=given, look="what is signed is b'<t>.' + body, keyed with secret")


signature_doc = "signature_is_valid() accepts a genuine, fresh signature and nothing else."


def test_signature_is_compared_in_constant_time(ex, monkeypatch):
    """signature_is_valid() compares digests with hmac.compare_digest, not ==."""
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    body, t = b"{}", 1_000_000
    ex.signature_is_valid("s", body, sign("s", body, t), now=t)
    if not calls:
        broke(
            test_signature_is_compared_in_constant_time.__doc__,
            "a genuine signature was checked without calling hmac.compare_digest.",
            "== stops at the first differing character, so its timing tells an attacker how "
            "much of a forged signature was right",
        )


class RecordingRandom(random.Random):
    """A seeded Random that records the bound of each uniform(0, bound) drawn."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.bounds: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append(b)
        return super().uniform(a, b)


def retry(ex, statuses: list[int], max_attempts: int) -> tuple[object, int, list[float], list]:
    """Run call_with_retries on a scripted server: (result, calls made, sleeps, jitter bounds)."""
    script, calls, sleeps = list(statuses), [], []

    async def send() -> int:
        calls.append(1)
        if len(calls) > max_attempts + 5:
            raise RuntimeError(f"send() called {len(calls)} times with max_attempts={max_attempts}")
        return script.pop(0) if script else statuses[-1]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    rng = RecordingRandom(7)
    result = asyncio.run(
        ex.call_with_retries(
            send, max_attempts=max_attempts, base_s=0.5, cap_s=4.0, rng=rng, sleep=sleep
        )
    )
    return result, len(calls), sleeps, rng.bounds


def test_retries_with_jitter_until_it_succeeds(ex):
    """call_with_retries() retries a failing server, with a jittered wait before each retry."""
    result, calls, sleeps, bounds = retry(ex, [503, 503, 200], max_attempts=5)
    look = "a loop over attempts; between two attempts, one sleep of rng.uniform(0, bound)"
    expect(
        (result, calls),
        (200, 3),
        given="a server answering 503, 503, 200 (status, calls)",
        look=look,
    )
    expect(
        bounds,
        [0.5, 1.0],
        given="the jitter bounds drawn before the two retries",
        look="draw each wait with rng.uniform(0, backoff_bound_s(attempt, base_s, cap_s))",
    )
    if sleeps == bounds:
        broke(
            test_retries_with_jitter_until_it_succeeds.__doc__,
            f"your client slept exactly {sleeps} s: the bounds themselves, so no jitter.",
            "sleep for the value rng.uniform() returns: a thousand clients that failed together "
            "must not all come back at the same instant",
        )
    expect(len(sleeps), 2, given="sleeps between 3 attempts", look=look)


def test_gives_up_after_max_attempts(ex):
    """call_with_retries() gives up after max_attempts, without a pointless last sleep."""
    result, calls, sleeps, _ = retry(ex, [503], max_attempts=4)
    expect(
        (result, calls),
        (503, 4),
        given="a server that is always down, max_attempts=4 (status returned, calls made)",
        look="stop when the attempts are spent, and return the last status",
    )
    expect(
        len(sleeps),
        3,
        given="sleeps between 4 attempts",
        look="after the last attempt nobody waits for another: return at once",
    )


def test_does_not_retry_a_bad_request(ex):
    """call_with_retries() returns at once when retrying cannot help."""
    result, calls, sleeps, _ = retry(ex, [400, 200], max_attempts=5)
    expect(
        (result, calls, sleeps),
        (400, 1, []),
        given="a 400 answer (status, calls, sleeps)",
        look="is_retryable() says which failures may go better later",
    )


def delivery(event_id: str, secret: str = "hook-secret", t: int = 1_000_000) -> tuple[bytes, str]:
    body = json.dumps({"event_id": event_id, "status": "succeeded"}).encode()
    return body, sign(secret, body, t)


def test_webhook_receiver_processes_each_event_once(ex):
    """WebhookReceiver processes a redelivered event once, and answers 200 each time."""
    receiver = ex.WebhookReceiver("hook-secret", clock=lambda: 1_000_000)
    statuses = [receiver.receive(*delivery(e)) for e in ("ev-1", "ev-1", "ev-2", "ev-1")]
    expect(
        (statuses, [event["event_id"] for event in receiver.processed]),
        ([200, 200, 200, 200], ["ev-1", "ev-2"]),
        given="deliveries of ev-1, ev-1, ev-2, ev-1 (statuses, events processed)",
        look="remember which event_ids you processed; a repeat is acknowledged (200, so the "
        "sender stops retrying) and not processed again",
    )


def test_webhook_receiver_is_not_fooled_by_a_forgery(ex):
    """WebhookReceiver refuses a forged delivery, which must not block the genuine one."""
    receiver = ex.WebhookReceiver("hook-secret", clock=lambda: 1_000_000)
    forged = delivery("ev-9", secret="attacker")
    statuses = [receiver.receive(*forged), receiver.receive(*delivery("ev-9"))]
    expect(
        (statuses, [event["event_id"] for event in receiver.processed]),
        ([401, 200], ["ev-9"]),
        given="a forged ev-9, then the genuine ev-9 (statuses, events processed)",
        look="check the signature before anything else, and record an event_id as seen only "
        "once you have processed it: else anyone can cancel your events by guessing ids",
    )


# --- issue 17: choosing a polling interval (polling_cost, choose_interval) ---------------------


def test_polling_cost(ex):
    """polling_cost() counts the polls up to the first that sees the job finished, and how
    late that one came."""
    cases = [
        ((0.25, 0.1), (4, 0.05), "a 0.25 s job polled every 0.1 s (polls at 0, 0.1, 0.2, 0.3)"),
        ((1.0, 0.3), (5, 0.2), "a 1 s job polled every 0.3 s"),
        ((0.05, 0.5), (2, 0.45), "a 0.05 s job polled every 0.5 s"),
    ]
    for args, expected, given in cases:
        expect(
            ex.polling_cost(*args),
            expected,
            given=f"{given} (polls, seconds late)",
            look="the first poll goes at once, at 0 s; the last is the first at or after the "
            "job's end, and it is late by the time between the two. Draw the polls on a line",
        )


JOBS_S = [0.31, 0.42, 0.58, 0.77, 0.93, 1.12]  # 0.02 s: 215 polls, 0.05: 92, 0.1: 51, 0.5: 17
INTERVALS_S = [0.02, 0.05, 0.1, 0.2, 0.5]


def test_choose_interval_meets_the_target_with_the_fewest_polls(ex):
    """choose_interval() picks the cheapest interval whose mean extra latency meets the target."""
    expect(
        ex.choose_interval(JOBS_S, INTERVALS_S, 0.05),
        0.05,
        given=f"jobs of {JOBS_S} s, intervals {INTERVALS_S} s, a target of 50 ms mean",
        look="0.02 s meets the target too, with 215 polls; 0.05 s meets it with 92; 0.1 s "
        "sends 51 but its jobs learn 62 ms late on average. Average polling_cost() over these "
        "jobs: half an interval is only a rule of thumb, and misses here",
    )
    expect(
        ex.choose_interval(JOBS_S, INTERVALS_S, 0.001),
        None,
        given="a target of 1 ms mean, which no interval here meets",
        look="say None rather than the least bad: a caller must know the target is out of reach",
    )


# --- issue 17: an idempotent front door (IdempotentFrontDoor) ---------------------------------


def front_door(ex):
    ids = iter(f"job-{n}" for n in range(1, 100))
    return ex.IdempotentFrontDoor(lambda: next(ids))


PAY = {"prompt": "Pay invoice 7:", "max_tokens": 8}


def test_a_resubmission_with_its_key_returns_the_same_job(ex):
    """IdempotentFrontDoor answers a resubmission with the job of the first submission."""
    door = front_door(ex)
    got = [door.submit(PAY, key="order-7"), door.submit(dict(PAY), key="order-7")]
    expect(
        (got, sorted(door.jobs)),
        ([("job-1", False), ("job-1", True)], ["job-1"]),
        given="the same request submitted twice with key 'order-7' (answers, jobs made)",
        look="look the key up before making a job: a client whose acknowledgement was lost "
        "sends the same request again, and must get the job that already runs, not a second",
    )


def test_submissions_without_a_key_are_each_their_own_job(ex):
    """IdempotentFrontDoor makes a new job for each submission that names no key."""
    door = front_door(ex)
    got = [door.submit(PAY), door.submit(PAY)]
    expect(
        got,
        [("job-1", False), ("job-2", False)],
        given="the same request submitted twice without a key",
        look="no key, no promise: two identical requests may well be meant as two jobs (two "
        "users asking the same question), so only a key makes a submission a repeat",
    )


def test_a_key_reused_for_another_request_is_refused(ex):
    """IdempotentFrontDoor refuses a key it has seen with a different request."""
    door = front_door(ex)
    door.submit(PAY, key="order-7")
    other = {**PAY, "prompt": "Pay invoice 8:"}
    try:
        got = door.submit(other, key="order-7")
    except ex.KeyReused:
        got = "KeyReused"
    expect(
        (got, door.jobs),
        ("KeyReused", {"job-1": PAY}),
        given="key 'order-7' sent again with another request (the answer, the jobs)",
        look="compare the request with the one the key first came with: answering with the "
        "old job would hand this client another request's result",
    )


# --- issue 18: a checked free-text answer (h18b) -----------------------------------------------
def test_why_jitter(lab):
    """why_jitter() makes the right choice, and its reason names why."""
    module = lab("exercises_02")
    explained(
        module.why_jitter(),
        choices=module.WITHOUT_JITTER,
        expected="a thundering herd",
        ideas={
            "that they would all retry at the same moments": (
                "same",
                "together",
                "at once",
                "simultaneous",
                "in sync",
                "in step",
                "lockstep",
                "synchron",
            ),
            "what that does to the server that just came back": (
                "overload",
                "knock",
                "swamp",
                "flood",
                "crash",
                "spike",
                "overwhelm",
                "hammer",
                "fall over",
                "falls over",
                "down again",
                "hit",
            ),
        },
        given="a thousand jobs fail together; what happens without jitter?",
    )

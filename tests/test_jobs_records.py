"""The job state machine, the retry policy and the webhook signature, without any I/O."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from inferlab.errors import RequestTimeoutError
from inferlab.jobs import Backoff, Status, check_callback_url, sign, verify_signature
from inferlab.jobs._records import Job, claim, finish, new_ids, new_job, retry_later
from inferlab.jobs.retry import outcome_of
from inferlab.wire.upstream import Reply, UpstreamError


def test_each_claim_spends_an_attempt_and_holds_a_lease():
    job = new_job({"prompt": "x"}, now=100.0, max_attempts=2)
    running = claim(job, worker="w", now=101.0, lease_s=5.0)
    assert (running.status, running.attempts, running.lease_until) == (Status.RUNNING, 1, 106.0)
    assert running.ready_at == 106.0  # claimable again only once the lease runs out
    assert running.version == job.version + 1
    again = retry_later(running, not_before=110.0, error={"message": "503"})
    assert (again.status, again.ready_at, again.worker) == (Status.QUEUED, 110.0, None)


def test_a_lease_that_ran_out_on_the_last_attempt_is_a_dead_letter_not_a_new_attempt():
    job = new_job({"prompt": "x"}, now=0.0, max_attempts=1)
    lapsed = claim(job, worker="dead", now=0.0, lease_s=1.0)
    taken = claim(lapsed, worker="next", now=5.0, lease_s=1.0)
    assert taken.status is Status.FAILED
    assert taken.error["type"] == "worker_lost"
    assert taken.ready_at is None


def test_finishing_makes_a_webhook_due_at_once_and_round_trips_through_json():
    job = new_job({"prompt": "x"}, now=0.0, max_attempts=1, callback_url="http://127.0.0.1/h")
    done = finish(claim(job, worker="w", now=1.0, lease_s=5), now=2.0, result={"choices": []})
    assert (done.status, done.callback.state, done.callback_at) == (
        Status.SUCCEEDED,
        "pending",
        2.0,
    )
    assert Job.from_json(done.to_json()) == done
    assert "lease_until" not in done.public() and done.public()["status"] == "succeeded"


def test_backoff_grows_exponentially_to_its_cap_and_full_jitter_stays_below_the_bound():
    """base 0.5 s, cap 4 s: bounds 0.5, 1, 2, 4, 4 s for attempts 1..5."""
    plain = Backoff(base_s=0.5, cap_s=4.0, jitter=False)
    assert [plain.delay_s(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    jittered = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(1))
    draws = [jittered.delay_s(3) for _ in range(200)]
    assert all(0 <= d <= 2.0 for d in draws)
    assert max(draws) - min(draws) > 1.0  # spread out, not all at the same moment
    with pytest.raises(ValueError):
        Backoff(base_s=0)


@pytest.mark.parametrize(
    ("answer", "retryable"),
    [
        (Reply(400, {"error": {"message": "prompt too long"}}), False),
        (Reply(404, {"error": {"message": "no such model"}}), False),
        (Reply(429, {"error": {"message": "slow down"}}), True),
        (Reply(503, {"error": {"message": "overloaded"}}), True),
        (UpstreamError("connection refused"), True),
        (RequestTimeoutError("deadline passed"), True),
    ],
)
def test_4xx_are_final_and_5xx_429_timeouts_and_refusals_are_retried(answer, retryable):
    outcome = outcome_of(answer)
    assert outcome.result is None and outcome.retryable is retryable
    assert outcome.error["message"]


def test_a_200_is_a_result():
    assert outcome_of(Reply(200, {"choices": []})).result == {"choices": []}


def test_a_signature_verifies_only_with_the_same_secret_body_and_a_fresh_timestamp():
    body = b'{"id":"job-1"}'
    header = sign("s3cret", body, 1_000)
    assert verify_signature("s3cret", body, header, now=1_010)
    assert not verify_signature("other", body, header, now=1_010)
    assert not verify_signature("s3cret", body + b" ", header, now=1_010)
    assert not verify_signature("s3cret", body, header, now=1_000 + 301)  # a replay, later
    assert not verify_signature("s3cret", body, "garbage", now=1_010)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8000/hook", True),
        ("http://localhost/hook", True),
        ("http://[::1]:9/hook", True),
        ("https://hooks.example.com/x", False),
        ("http://10.0.0.5/admin", False),
        ("ftp://127.0.0.1/x", False),
        ("not a url", False),
    ],
)
def test_callbacks_go_to_loopback_unless_a_host_is_allowed(url, allowed):
    assert (check_callback_url(url) is None) is allowed
    assert check_callback_url("https://hooks.example.com/x", ["hooks.example.com"]) is None


def test_a_job_is_stored_as_the_same_json_as_dataclasses_would_write():
    """to_json copies the fields shallowly (asdict deep-copies, four times slower); the text on
    disk must stay what it was, so that files written before read back."""
    import dataclasses
    import json

    job = finish(
        new_job({"prompt": ["a", "b"], "max_tokens": 4}, now=1.0, max_attempts=3,
                callback_url="http://127.0.0.1:9/hook"),
        now=2.0,
        result={"choices": [{"text": "hi", "index": 0}], "usage": {"completion_tokens": 1}},
    )  # fmt: skip
    assert job.to_json() == json.dumps(dataclasses.asdict(job), separators=(",", ":"))
    assert Job.from_json(job.to_json()) == job


def test_job_ids_drawn_ahead_are_each_handed_out_once():
    """Ids come from one os.urandom per 256 (a system call per id cost the event loop the GIL
    during a burst): across refills, and from several threads at once, none repeats."""

    def draw(_: int) -> list[str]:
        return [*new_ids(7), new_job({}, now=0, max_attempts=1).id]

    with ThreadPoolExecutor(max_workers=4) as threads:
        drawn = list(threads.map(draw, range(200)))
    ids = [job_id for group in drawn for job_id in group]
    assert len(ids) == len(set(ids)) == 1600
    assert all(len(job_id) == len("job-") + 32 for job_id in ids)

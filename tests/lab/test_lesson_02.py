"""Lesson 02's exercises (labs/exercises_02.py): retries and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.lab.grading import broke, expect

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

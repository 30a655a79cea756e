"""Exercises for lesson 02: retries and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac


def backoff_bound_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The longest wait after failed attempt number `attempt` (1 for the first): base_s doubled
    for each earlier failure, never more than cap_s. (Full jitter then draws uniformly between 0
    and this bound.)

    backoff_bound_s(1, 0.5, 4) -> 0.5;  (3, 0.5, 4) -> 2.0;  (10, 0.5, 4) -> 4.0
    """
    # TODO: base_s * 2 ** (attempt - 1), capped
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: base_s * 2 ** (attempt - 1), capped'
    )


def is_retryable(status: int) -> bool:
    """Should a job whose upstream answered `status` be tried again? Yes for 408, 409, 429 and
    every 5xx (they may go better later); no for any other 4xx (the request itself is wrong)."""
    # TODO: 5xx and 408/409/429: yes; the rest: no
    raise NotImplementedError(
        'TODO in labs/exercises_02.py: 5xx and 408/409/429: yes; the rest: no'
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

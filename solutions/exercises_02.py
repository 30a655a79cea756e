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
    # BEGIN SOLUTION (base_s * 2 ** (attempt - 1), capped)
    return min(cap_s, base_s * 2 ** (attempt - 1))
    # END SOLUTION


def is_retryable(status: int) -> bool:
    """Should a job whose upstream answered `status` be tried again? Yes for 408, 409, 429 and
    every 5xx (they may go better later); no for any other 4xx (the request itself is wrong)."""
    # BEGIN SOLUTION (5xx and 408/409/429: yes; the rest: no)
    return status >= 500 or status in (408, 409, 429)
    # END SOLUTION


def signature_is_valid(secret: str, body: bytes, header: str, now: float) -> bool:
    """Check an `Inferlab-Signature: t=<unix time>,v1=<hex>` header: v1 must be the hex
    HMAC-SHA256, keyed with `secret`, of b"<t>." + body, and t at most 300 s away from `now`.
    Compare with hmac.compare_digest (a plain == leaks, by its timing, how much matched).
    Anything malformed is simply invalid."""
    # BEGIN SOLUTION (parse t and v1; recompute the HMAC; compare in constant time; check age)
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return abs(now - timestamp) <= 300 and hmac.compare_digest(expected.hexdigest(), given)
    # END SOLUTION

"""When to try a job again, and when not to.

Retry what may go better next time: the upstream was down, overloaded, or slow (5xx, 429,
timeouts, refused connections). Never retry a request the upstream called wrong (any other
4xx): it would fail the same way every time, so it goes straight to the dead letters.

Waits grow exponentially, base · 2^(attempt-1) up to a cap, with "full jitter" (a uniform draw
between zero and that bound): when an upstream comes back, a thousand jobs that failed together
do not all return in the same millisecond and knock it over again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import BatchingError, OverloadedError, RequestTimeoutError, UpstreamError
from ..wire.upstream import Reply
from ._records import Json, error_info

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got {self.base_s} and {self.cap_s}")

    def delay_s(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1 for the first)."""
        bound = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return self.rng.uniform(0, bound) if self.jitter else bound


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: a result, or an error that may or may not be worth retrying."""

    result: Json | None = None
    error: Json | None = None
    retryable: bool = False


def outcome_of(answer: Reply | BaseException) -> Outcome:
    """Classify the batcher's answer for one job."""
    if isinstance(answer, Reply):
        if answer.status == 200 and answer.body is not None:
            return Outcome(result=answer.body)
        upstream = (answer.body or {}).get("error")
        message = upstream.get("message") if isinstance(upstream, dict) else str(upstream)
        return Outcome(
            error=error_info(
                f"the upstream answered {answer.status}: {message}",
                kind="upstream_error",
                status=answer.status,
            ),
            retryable=answer.status in RETRYABLE_STATUS,
        )
    if isinstance(answer, UpstreamError):
        return Outcome(
            error=error_info(str(answer), kind="upstream_error", status=answer.status),
            retryable=True,
        )
    if isinstance(answer, RequestTimeoutError):
        return Outcome(error=error_info(str(answer), kind="timeout", status=504), retryable=True)
    if isinstance(answer, (OverloadedError, BatchingError)):
        return Outcome(error=error_info(str(answer), kind="batch_failed"), retryable=True)
    # Anything else is a bug on our side or an unexpected reply: retry, the attempts are bounded.
    return Outcome(
        error=error_info(f"{type(answer).__name__}: {answer}", kind="worker_error"),
        retryable=True,
    )

"""The small parts behind MicroBatcher: its settings and stats, its bookkeeping, and how a
batch's callers are answered: each exactly once, whatever the handler did."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from ..engine.clock import Cancellable
from ..errors import BatchFailedError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatcherStats:
    """Counters a dashboard reads; `queue_wait_s` keeps the most recent waits only."""

    submitted: int = 0
    completed: int = 0  # answered with a result
    failed: int = 0  # answered with the handler's error
    rejected: int = 0  # refused at once: queue full
    expired: int = 0  # deadline passed
    cancelled: int = 0  # the caller went away
    batches: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    flush_reasons: Counter[str] = field(
        default_factory=Counter
    )  # full, timeout, idle, flush, shutdown
    queue_wait_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    mean_batch_duration_s: float = 0.0  # exponentially weighted


class _State(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    key: Hashable
    enqueued_s: float
    queued: bool = True  # still in its group's queue (not dispatched, not removed)
    deadline: Cancellable | None = None
    batch: _Batch | None = None


@dataclass(eq=False)
class _Batch:
    members: list[_Pending[Any, Any]]
    live: int  # members whose callers still wait for this batch
    started_s: float = 0.0  # when it was sent, on the batcher's clock
    task: asyncio.Task[None] | None = None


def check_at_least(name: str, value: float, minimum: float, *, integer: bool = False) -> None:
    """Refuse a setting of the wrong type or below `minimum`, naming what was given.

    `True` is an int to Python, and 2.5 >= 1, so both checks matter: a batch size of True or
    2.5 is a mistake the caller should hear about, not a batch of one or a crash later.
    """
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if not value >= minimum:  # also refuses NaN
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class BatcherSettings:
    """What a MicroBatcher may be told; checked on creation, so a bad change never applies."""

    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01
    max_concurrent_batches: int = 1
    max_queue_size: int = 10_000
    dispatch_when_idle: bool = True

    def __post_init__(self) -> None:
        check_at_least("max_batch_size", self.max_batch_size, 1, integer=True)
        check_at_least("batch_wait_timeout_s", self.batch_wait_timeout_s, 0)
        if self.batch_wait_timeout_s == float("inf"):
            raise ValueError("batch_wait_timeout_s must be finite, got inf")
        check_at_least("max_concurrent_batches", self.max_concurrent_batches, 1, integer=True)
        check_at_least("max_queue_size", self.max_queue_size, 1, integer=True)
        if not isinstance(self.dispatch_when_idle, bool):
            raise TypeError(
                f"dispatch_when_idle must be true or false, got {self.dispatch_when_idle!r}"
            )


def answer(waiting: list[_Pending[T, R]], results: list[R], stats: BatcherStats) -> None:
    """Give each caller its result, in order; a wrong count fails them all, clearly."""
    if not isinstance(results, list) or len(results) != len(waiting):
        count = len(results) if isinstance(results, list) else type(results).__name__
        message = (
            f"the batch handler returned {count} results for {len(waiting)} items; "
            "it must return a list with one result per item, in order"
        )
        fail(waiting, BatchFailedError(message), stats)
        return
    for pending, result in zip(waiting, results, strict=True):  # lengths checked above
        if not pending.future.done():
            stats.completed += 1
            pending.future.set_result(result)


def fail(waiting: list[_Pending[T, R]], error: BaseException, stats: BatcherStats) -> None:
    """Give every caller still waiting the same error."""
    for pending in waiting:
        if not pending.future.done():
            stats.failed += 1
            pending.future.set_exception(error)


def retry_after_s(queued: int, settings: BatcherSettings, stats: BatcherStats) -> float:
    """How long an overloaded caller should wait: the batches ahead of it, at their recent pace.

    40 queued, batches of 8, one at a time, 30 ms each -> 5 batches ahead -> 0.15 s.
    """
    batches_ahead = queued / settings.max_batch_size / settings.max_concurrent_batches
    per_batch_s = stats.mean_batch_duration_s or settings.batch_wait_timeout_s
    return max(settings.batch_wait_timeout_s, batches_ahead * per_batch_s)

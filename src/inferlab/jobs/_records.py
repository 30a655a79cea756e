"""A job and the moves it can make, as pure functions: the one state machine every store shares.

    queued ──claim──▶ running ──reply 200──────────────────▶ succeeded
      ▲                 │ ──4xx (the request is wrong)─────▶ failed      (a dead letter)
      └──retry later────┤ ──5xx / timeout, attempts left──▶ queued      (backoff with jitter)
                        │ ──5xx / timeout, none left──────▶ failed      (a dead letter)
                        └ lease runs out (worker died) ───▶ claimable again, one attempt spent
    queued / running ──DELETE──▶ cancelled
    finished, with a callback_url: pending ──take_delivery──▶ delivered | failed | pending again

Stores keep jobs; they never decide anything. Every change is a new `Job` with `version + 1`,
written only if the stored version is still the one it was made from (compare-and-set), so two
workers, or a worker and a DELETE, can race and exactly one of them wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

Json = dict[str, Any]


class Status(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


UNFINISHED = (Status.QUEUED, Status.RUNNING)


@dataclass(frozen=True)
class Callback:
    """Delivery of the finished job to its `callback_url` (webhooks.py)."""

    state: str = "none"  # none -> pending -> delivered | failed
    attempts: int = 0
    next_at: float | None = None  # when to try (again); also the lease of a delivery under way
    last_error: str | None = None


@dataclass(frozen=True)
class Job:
    id: str
    request: Json  # the completion request, as validated
    created_at: float  # wall-clock seconds since the epoch: jobs outlive processes
    status: Status = Status.QUEUED
    version: int = 0
    attempts: int = 0
    max_attempts: int = 3
    not_before: float = 0.0  # a queued job is claimable from then on (backoff)
    lease_until: float | None = None  # a running job's worker must renew before then
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: Json | None = None  # an OpenAI completion body
    error: Json | None = None  # {"message", "type", "code", "status"}: the last error
    callback_url: str | None = None
    callback: Callback = field(default_factory=Callback)
    idempotency_key: str | None = None
    request_hash: str = ""  # of the request, with an idempotency key only (none: never compared)

    # -- what stores index ---------------------------------------------------------------------
    @property
    def ready_at(self) -> float | None:
        """When a worker may claim this job: at once if queued, once its lease runs out if
        running (its worker may have died), never if finished."""
        if self.status is Status.QUEUED:
            return self.not_before
        if self.status is Status.RUNNING:
            return self.lease_until
        return None

    @property
    def callback_at(self) -> float | None:
        return self.callback.next_at if self.callback.state == "pending" else None

    # -- (de)serialising -----------------------------------------------------------------------
    def to_json(self) -> str:
        # subtle: a shallow copy of the fields, not dataclasses.asdict, which deep-copies the
        # request and the result on every write (a fifth of a job's CPU in the queue's profile).
        # json.dumps reads the nested dicts in place; nothing here mutates them.
        data = {**vars(self), "callback": vars(self.callback)}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        data = json.loads(text)
        return cls(
            **{**data, "status": Status(data["status"]), "callback": Callback(**data["callback"])}
        )

    def public(self) -> Json:
        """The job as the API shows it: no leases, no internal bookkeeping."""
        return {
            "id": self.id,
            "object": "job",
            "status": self.status.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "request": self.request,
            "result": self.result,
            "error": self.error,
            "callback_url": self.callback_url,
            "callback": None
            if self.callback_url is None
            else {
                "state": self.callback.state,
                "attempts": self.callback.attempts,
                "last_error": self.callback.last_error,
            },
        }


def request_hash(request: Json) -> str:
    """Tells a repeated submission (same key, same body) from a reused key (other body)."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class _RandomIds:
    """Job ids, "job-3f2a..." with 128 random bits each (as uuid4), from one os.urandom call
    per 256 ids.

    subtle: os.urandom is a system call that releases the GIL, and during a burst of
    submissions the store's thread takes it each time: one call per id cost the event loop a
    wait for the GIL back per job. The bytes drawn ahead are dropped in a forked child, which
    would otherwise hand out the same ids as its parent; the lock, because two job servers
    in one process (each in its thread, as tests run them) draw from the same bytes."""

    BYTES = 16

    def __init__(self, ahead: int = 256):
        self.ahead = ahead
        self._random, self._used, self._pid = b"", 0, 0
        self._lock = threading.Lock()

    def take(self, count: int) -> list[str]:
        size = self.BYTES * count
        with self._lock:
            if self._pid != os.getpid() or self._used + size > len(self._random):
                self._random = os.urandom(max(size, self.BYTES * self.ahead))
                self._used, self._pid = 0, os.getpid()
            drawn = self._random[self._used : self._used + size]
            self._used += size
        return [f"job-{drawn[i : i + self.BYTES].hex()}" for i in range(0, size, self.BYTES)]


new_ids = _RandomIds().take  # new_ids(2) -> ["job-3f2a...", "job-91c0..."]


def new_job(
    request: Json,
    *,
    now: float,
    max_attempts: int,
    callback_url: str | None = None,
    idempotency_key: str | None = None,
    job_id: str | None = None,
) -> Job:
    return Job(
        id=job_id or new_ids(1)[0],
        request=request,
        created_at=now,
        max_attempts=max_attempts,
        not_before=now,
        callback_url=callback_url,
        idempotency_key=idempotency_key,
        # Only a key is ever compared by its request's hash: without one, skip the work.
        request_hash="" if idempotency_key is None else request_hash(request),
    )


def _next(job: Job, **changes: Any) -> Job:
    return replace(job, version=job.version + 1, **changes)


def claim(job: Job, *, worker: str, now: float, lease_s: float) -> Job:
    """A worker takes the job for one attempt. A running job is claimed only when its lease ran
    out: its attempt is spent, and if it was the last one the job fails instead."""
    if job.status is Status.RUNNING and job.attempts >= job.max_attempts:
        return finish(
            job,
            now=now,
            error=error_info(
                f"the worker of attempt {job.attempts} stopped answering (lease expired) and "
                "no attempts are left",
                kind="worker_lost",
            ),
        )
    return _next(
        job,
        status=Status.RUNNING,
        attempts=job.attempts + 1,
        worker=worker,
        lease_until=now + lease_s,
        started_at=job.started_at or now,
    )


def renew(job: Job, *, now: float, lease_s: float) -> Job:
    return _next(job, lease_until=now + lease_s)


def retry_later(job: Job, *, not_before: float, error: Json) -> Job:
    return _next(
        job, status=Status.QUEUED, not_before=not_before, lease_until=None, worker=None, error=error
    )


def finish(
    job: Job,
    *,
    now: float,
    result: Json | None = None,
    error: Json | None = None,
    status: Status | None = None,
) -> Job:
    """succeeded (with a result), failed (with an error) or cancelled; a callback, if the job
    has one, becomes due at once."""
    final = status or (Status.SUCCEEDED if error is None else Status.FAILED)
    callback = (
        Callback(state="pending", next_at=now) if job.callback_url is not None else job.callback
    )
    return _next(
        job,
        status=final,
        finished_at=now,
        lease_until=None,
        result=result,
        error=error if error is not None else job.error if final is Status.CANCELLED else None,
        callback=callback,
    )


def take_delivery(job: Job, *, hold_until: float) -> Job:
    """A webhook sender starts an attempt at delivering; nobody else tries before hold_until."""
    callback = replace(job.callback, attempts=job.callback.attempts + 1, next_at=hold_until)
    return _next(job, callback=callback)


def postpone_delivery(job: Job, *, until: float) -> Job:
    """A delivery waits its turn (its receiver is busy) without spending an attempt."""
    return _next(job, callback=replace(job.callback, next_at=until))


def delivery_outcome(
    job: Job, *, error: str | None, give_up: bool, retry_at: float | None = None
) -> Job:
    """How the attempt `take_delivery` started ended: delivered, given up, or due again."""
    attempts = job.callback.attempts
    if error is None:
        return _next(job, callback=Callback("delivered", attempts))
    if give_up:
        return _next(job, callback=Callback("failed", attempts, last_error=error))
    return _next(job, callback=Callback("pending", attempts, next_at=retry_at, last_error=error))


def cancel(job: Job, *, now: float) -> Job:
    return finish(job, now=now, status=Status.CANCELLED)


def error_info(message: str, *, kind: str, status: int | None = None) -> Json:
    return {"message": message, "type": kind, "status": status}

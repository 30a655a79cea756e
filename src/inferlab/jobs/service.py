"""The job service: one store, its workers, its webhook sender, and the upstream they call.

`JobService` is what the HTTP routes (app.py) talk to; it holds no HTTP itself, so the same
calls work from a test or a notebook. Submitting writes the job to the store before it returns:
the acknowledgement is a promise kept across crashes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..batching.batcher import MicroBatcher
from ..errors import IdempotencyKeyReusedError, OpenAIHTTPError, QueueFullError
from ..serve._http import retry_after_header
from ..wire.upstream import Call, Reply, Upstream, batch_key
from ._board import JobBoard
from ._records import Job, Json, Status, cancel, new_ids, new_job
from .retry import Backoff
from .settings import MAX_JOBS_PER_SUBMISSION
from .store import JobStore
from .webhooks import WebhookSender, check_callback_url
from .workers import WorkerPool


class JobError(OpenAIHTTPError):
    """A request the service refuses, with the HTTP status and OpenAI error body to answer."""


@dataclass(frozen=True)
class Submission:
    """One job to queue, as `submit` takes it: for `submit_many`."""

    request: Json
    callback_url: str | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None


@dataclass
class Submitted:
    job: Job
    created: bool  # False: an earlier submission with the same idempotency key


class JobService:
    def __init__(
        self,
        store: JobStore,
        upstream: Upstream,
        *,
        workers: int = 4,
        max_queue_size: int = 10_000,
        max_attempts: int = 3,
        lease_s: float = 10.0,
        attempt_timeout_s: float = 300.0,
        backoff: Backoff | None = None,
        webhook_secret: str | None = None,
        webhook_max_attempts: int = 5,
        webhook_backoff: Backoff | None = None,
        allow_callback_hosts: Iterable[str] = (),
        fallback_poll_s: float = 0.5,
        **batching: Any,
    ):
        if max_queue_size < 1 or max_attempts < 1:
            raise ValueError("max_queue_size and max_attempts must be >= 1")
        self.store, self.upstream = store, upstream
        self.max_queue_size = max_queue_size
        self.max_attempts = max_attempts
        self.webhook_secret = webhook_secret
        self.allow_callback_hosts = tuple(allow_callback_hosts)
        self.board = JobBoard(fallback_poll_s)
        self.board.read_from(store.versions, store.get)
        # Workers bound how many jobs are in flight; let the batcher send several batches at
        # once, so that adding workers adds throughput instead of a queue inside the batcher.
        batching.setdefault("max_concurrent_batches", 8)
        self.batcher: MicroBatcher[Call, Reply] = MicroBatcher(
            upstream.complete, group_key=batch_key, **batching
        )
        self.pool = WorkerPool(
            store,
            self.batcher,
            self.board,
            workers=workers,
            lease_s=lease_s,
            attempt_timeout_s=attempt_timeout_s,
            backoff=backoff,
        )
        self.webhooks = (
            WebhookSender(
                store,
                self.board,
                webhook_secret,
                max_attempts=webhook_max_attempts,
                backoff=webhook_backoff,
            )
            if webhook_secret
            else None
        )
        self._sender: asyncio.Task[None] | None = None
        self._started_s = time.monotonic()

    async def start(self) -> None:
        await self.store.open()  # a store that would lose acknowledged jobs refuses here
        self.pool.start()
        if self.webhooks is not None:
            self._sender = asyncio.ensure_future(self.webhooks.run())

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self.webhooks is not None and self._sender is not None:
            self.webhooks.stop()
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        await self.board.aclose()
        await self.batcher.aclose(drain=False)
        await self.upstream.aclose()
        await self.store.close()

    async def submit(
        self,
        request: Json,
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
    ) -> Submitted:
        self._check_callback(callback_url, param="callback_url")
        job = new_job(
            request,
            now=time.time(),
            max_attempts=max_attempts or self.max_attempts,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
        try:
            stored, created = await self.store.add(job, max_unfinished=self.max_queue_size)
        except QueueFullError as exc:
            raise self._queue_full(str(exc), exc.unfinished) from exc
        except IdempotencyKeyReusedError as exc:
            raise JobError(409, str(exc), code="idempotency_key_reused") from exc
        if created:
            self.board.post(stored)
        return Submitted(stored, created)

    async def submit_many(self, submissions: Sequence[Submission]) -> list[Submitted]:
        """Queue 1 to MAX_JOBS_PER_SUBMISSION jobs at once, all or none, in one write to the
        store (one disk sync); one `Submitted` per submission, in order.

        [Submission({"prompt": "a"}), Submission({"prompt": "b"})] -> [Submitted(job a), ...]
        """
        if not 1 <= len(submissions) <= MAX_JOBS_PER_SUBMISSION:
            raise JobError(
                400,
                f"send 1 to {MAX_JOBS_PER_SUBMISSION} jobs at once, got {len(submissions)}",
                param="requests",
            )
        for index, one in enumerate(submissions):
            self._check_callback(one.callback_url, param=f"requests.{index}.callback_url")
        now = time.time()
        jobs = [
            new_job(
                one.request,
                now=now,
                max_attempts=one.max_attempts or self.max_attempts,
                callback_url=one.callback_url,
                idempotency_key=one.idempotency_key,
                job_id=job_id,
            )
            for one, job_id in zip(submissions, new_ids(len(submissions)), strict=True)
        ]
        _check_keys_within(jobs)
        try:
            stored = await self.store.add_many(jobs, max_unfinished=self.max_queue_size)
        except QueueFullError as exc:
            if exc.adding > self.max_queue_size:  # a 429 would be retried, and never fit
                raise JobError(
                    400,
                    f"this submission would add {exc.adding} jobs, more than this queue ever "
                    f"holds (at most {self.max_queue_size}): send them in smaller bulks",
                    param="requests",
                ) from exc
            room = max(0, self.max_queue_size - exc.unfinished)
            message = (
                f"the job queue has room for {room} more jobs ({exc.unfinished} waiting or "
                f"running, at most {self.max_queue_size}); this submission would add more, "
                "and none of it was queued"
            )
            raise self._queue_full(message, exc.unfinished) from exc
        except IdempotencyKeyReusedError as exc:
            param = f"requests.{exc.index}.idempotency_key"
            raise JobError(409, str(exc), param=param, code="idempotency_key_reused") from exc
        for job, created in stored:
            if created:
                self.board.post(job)
        return [Submitted(job, created) for job, created in stored]

    def _check_callback(self, callback_url: str | None, *, param: str) -> None:
        if callback_url is None:
            return
        if self.webhook_secret is None:
            raise JobError(
                400,
                "this job server has no webhook secret, so it cannot sign callbacks: "
                "start it with --webhook-secret (or INFERLAB_WEBHOOK_SECRET)",
                param=param,
            )
        refused = check_callback_url(callback_url, self.allow_callback_hosts)
        if refused:
            raise JobError(400, refused, param=param)

    def _queue_full(self, message: str, unfinished: int) -> JobError:
        retry_after = retry_after_header(self._retry_after_s(unfinished))
        return JobError(429, message, headers={"Retry-After": retry_after})

    def _retry_after_s(self, unfinished: int) -> float:
        # How long the jobs ahead would take at the rate the workers finish them, roughly.
        rate = self.batcher.stats.completed / max(1e-9, time.monotonic() - self._started_s)
        return min(60.0, unfinished / rate) if rate > 0 else 1.0

    async def _load(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobError(404, f"no job {job_id!r}", param="id", code="job_not_found")
        return job

    async def get(self, job_id: str, *, wait_s: float = 0.0) -> Job:
        """The job; with wait_s, not before it has finished or wait_s has passed. It reads the
        store once: later versions come from the board, posted by whoever changed the job."""
        if wait_s <= 0:
            return await self._load(job_id)
        deadline = time.monotonic() + wait_s
        with self.board.watch(job_id) as watch:
            job = await self._load(job_id)
            while not job.status.finished:
                newer = await watch.next(job, deadline - time.monotonic())
                if newer is None:
                    break  # wait_s passed
                job = newer
        return job

    async def changes(self, job_id: str) -> AsyncIterator[Job]:
        """Yield the job as it is, then at every change of its status or of its webhook's
        delivery, until it finished and its webhook (if any) was delivered or given up."""
        seen: tuple[Status, str] | None = None
        with self.board.watch(job_id) as watch:
            job = await self._load(job_id)
            while True:
                if (job.status, job.callback.state) != seen:
                    seen = (job.status, job.callback.state)
                    yield job
                if job.status.finished and job.callback.state != "pending":
                    return
                job = await watch.next(job, None) or job  # (no timeout: never None)

    async def cancel(self, job_id: str) -> Job:
        while True:
            job = await self.get(job_id)
            if job.status.finished:
                raise JobError(
                    409,
                    f"job {job_id} already finished ({job.status.value}); nothing to cancel",
                    code="job_finished",
                )
            cancelled = cancel(job, now=time.time())
            if await self.store.replace(cancelled):
                self.board.post(cancelled)
                return cancelled
            # It changed under us (claimed, renewed, finished): look again.

    async def list(self, status: Status | None, limit: int) -> list[Job]:
        return await self.store.list(status, limit)

    async def stats(self) -> Json:
        counts = await self.store.counts()
        return {
            "workers": self.pool.workers,
            "busy_workers": self.pool.busy,
            **{status.value: counts[status] for status in Status},
            "max_queue_size": self.max_queue_size,
        }


def _check_keys_within(jobs: list[Job]) -> None:
    """A key used twice in one bulk with two requests: a 409 naming both items.

    The stores refuse it too, but their message names the job the first item would have made,
    which a refused bulk never stored: a client that looked it up would find nothing."""
    first_use: dict[str, tuple[int, str]] = {}  # key -> (index, request hash)
    for index, job in enumerate(jobs):
        if job.idempotency_key is None:
            continue
        earlier, hash_ = first_use.setdefault(job.idempotency_key, (index, job.request_hash))
        if hash_ != job.request_hash:
            raise JobError(
                409,
                f"requests.{index} uses the idempotency key {job.idempotency_key!r} of "
                f"requests.{earlier} with another request; none of the jobs was queued",
                param=f"requests.{index}.idempotency_key",
                code="idempotency_key_reused",
            )

"""Workers: take jobs from the store, send them through a MicroBatcher, write what came back.

One claimer task takes the oldest due jobs, as many as workers are idle (compare-and-set, so two
processes never both win one), and starts one attempt task per job: submit it to the shared
batcher, and wait. Several attempts waiting at once is what fills a batch: the number of
workers is the number of jobs in flight (at most MAX_WORKERS), and it can change while the pool
runs (`scale`). A worker removed while busy first finishes its job; an idle worker costs
nothing, since it is only room in a count, not a task that polls.

While it waits, a worker renews its lease every third of `lease_s`. If the process dies the
renewals stop, the lease runs out, and another worker (here after a restart, or on another
machine) claims the job again: processing is at least once. If a renewal finds the job changed
by someone else (cancelled, or claimed again after a stall), the worker drops its attempt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..batching.batcher import MicroBatcher
from ..batching.loops import call_in_loop
from ..wire.upstream import Call, Reply
from ._board import JobBoard
from ._records import Job, Status, claim, error_info, finish, renew, retry_later
from .retry import Backoff, outcome_of
from .settings import MAX_WORKERS
from .store import JobStore

log = logging.getLogger(__name__)


@dataclass
class PoolStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0  # attempts whose job was cancelled or taken over meanwhile


def call_for(request: dict[str, Any]) -> Call:
    prompt = request["prompt"]
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    return Call(request, prompts, int(request.get("n") or 1), stream=False, include_usage=False)


def _forget(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.cancel()  # the batcher drops a cancelled item that is still queued
    elif not future.cancelled():
        future.exception()  # retrieved: asyncio logs no "exception was never retrieved"


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        batcher: MicroBatcher[Call, Reply],
        board: JobBoard,
        *,
        workers: int = 4,
        lease_s: float = 10.0,
        attempt_timeout_s: float = 300.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if lease_s <= 0 or attempt_timeout_s <= 0:
            raise ValueError("lease_s and attempt_timeout_s must be > 0")
        self.store, self.batcher, self.board = store, batcher, board
        self.lease_s = lease_s
        self.attempt_timeout_s = attempt_timeout_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.stats = PoolStats()
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._target = self._check(workers)
        self._attempts: set[asyncio.Task[None]] = set()  # one per busy worker
        self._room = asyncio.Event()  # set when a worker may have become free
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = False  # set by aclose(): the claimer ends even if its cancel is lost
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = 0  # attempts started, to name them

    @staticmethod
    def _check(workers: int) -> int:
        if not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
            raise ValueError(
                f"workers must be a whole number from 0 to {MAX_WORKERS}, got {workers!r}"
            )
        return workers

    @property
    def workers(self) -> int:
        return self._target

    @property
    def busy(self) -> int:
        return len(self._attempts)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._claimer = asyncio.ensure_future(self._claim_loop())

    def scale(self, workers: int) -> None:
        """Run `workers` workers from now on; callable from any thread. A worker removed while
        busy first finishes its job; an idle one is only a number, so scaling costs nothing."""
        self._target = self._check(workers)
        if self._loop is not None and self._loop.is_running():  # else start() reads _target
            call_in_loop(self._loop, self._room.set)

    async def aclose(self) -> None:
        """Stop every worker now. Jobs they held stay `running` until their lease runs out,
        and are then claimed again: stopping loses nothing.

        subtle: cancelling alone is not enough. On Python 3.11 `asyncio.wait_for` returns the
        inner result, swallowing the cancel, when the two happen in the same turn of the loop
        (bpo-42130), and a library under us (redis-py) may wait that way. The claimer would
        then carry on, aclose() would wait for it forever, so the claimer also checks a flag.
        """
        self._stopping = True
        self._target = 0
        tasks = [*self._attempts, *([self._claimer] if self._claimer else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the claimer ---------------------------------------------------------------------------
    # One task claims for all the pool's workers: as many due jobs as workers are idle, then an
    # attempt task for each. An idle worker is not a task that polls; it is room in this count.
    async def _claim_loop(self) -> None:
        while not self._stopping:
            mark = self.board.mark()
            idle = self._target - len(self._attempts)
            if idle <= 0:
                self._room.clear()  # (no await since `idle` was counted: no set is missed)
                await self._room.wait()  # an attempt ended, or scale() added workers
                continue
            try:
                wanted = min(idle, 256)
                jobs = await self._claim(wanted)
                if self._stopping:
                    # Closed while claiming, its cancel lost: begin nothing, since aclose() no
                    # longer waits for new attempts. Their leases bring these jobs back.
                    return
                for job in jobs:
                    self._begin(job)
                if jobs and len(jobs) == wanted:
                    # Every worker holds a job now, so no other job can join their batch until
                    # one finishes: send it at once rather than wait for it to fill. (With
                    # workers to spare, the batcher waits as configured: more may arrive.)
                    self.batcher.flush()
                if len(jobs) < idle:  # nothing more is due: wait for work, or for its time
                    await self.board.wait(mark, await self._until_due())
            except Exception:  # the store is unreachable, say: log, wait a moment, go on
                log.exception("worker pool %s failed to claim; it carries on", self.name)
                await self.board.wait(mark, self.board.fallback_s)

    def _begin(self, job: Job) -> None:
        # Queued in the batcher here, not in the task's first step, so that a flush right
        # after a claim sends the jobs just claimed.
        try:
            future = self.batcher.submit_nowait(
                call_for(job.request), timeout_s=self.attempt_timeout_s
            )
        except Exception as exc:  # the batcher is full or closed: an attempt that failed
            future = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
        task = asyncio.ensure_future(self._attempt_logged(job, future))
        # A task cancelled before its first step (the pool closing) never runs its `finally`:
        # take the job out of the batcher here, or it would still be sent.
        task.add_done_callback(lambda _: _forget(future))
        self._attempts.add(task)
        task.add_done_callback(self._attempt_ended)

    def _attempt_ended(self, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._room.set()

    async def _attempt_logged(self, job: Job, future: asyncio.Future[Reply]) -> None:
        try:
            await self._attempt(job, future)
        except Exception:  # the store went away mid-attempt: the lease brings the job back
            log.exception(
                "worker %s failed on %s; the job is retried when its lease ends", job.worker, job.id
            )

    async def _until_due(self) -> float:
        due = await self.store.next_due_at()
        return self.board.fallback_s if due is None else due - self.clock()

    async def _claim(self, idle: int) -> list[Job]:
        """Claim up to `idle` due jobs, their compare-and-sets in one write (one group commit on
        SQLite, one script on Redis). Racing another process for a job is fine: exactly one of
        us wins it."""
        now = self.clock()
        taken: list[Job] = []
        for job in await self.store.due_work(now, limit=idle):
            # subtle: a store may read the index and the job at different moments (Redis did,
            # before one script read both), so the job may have been claimed in between: trust
            # its own data, not the index.
            if job.ready_at is None or job.ready_at > now:
                continue
            self._started += 1
            worker = f"{self.name}/{self._started}"
            taken.append(claim(job, worker=worker, now=now, lease_s=self.lease_s))
        won = await self.store.replace_many(taken) if taken else []
        claimed = []
        for job, ok in zip(taken, won, strict=True):
            if not ok:
                continue  # another worker was quicker
            self.board.post(job)
            if job.status is Status.RUNNING:
                self.stats.claimed += 1
                claimed.append(job)
            else:
                self.stats.failed += 1  # its worker died on the last attempt: a dead letter now
        return claimed

    async def _attempt(self, job: Job, future: asyncio.Future[Reply]) -> None:
        try:
            while not future.done():
                changed = self.board.mark(job.id)
                waiter = asyncio.ensure_future(changed.wait())
                either: set[asyncio.Future[Any]] = {future, waiter}
                await asyncio.wait(
                    either, timeout=self.lease_s / 3, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                if future.done():
                    break
                renewed = renew(job, now=self.clock(), lease_s=self.lease_s)
                if not await self.store.replace(renewed):
                    self.stats.dropped += 1  # cancelled, or a stalled lease was claimed again
                    return
                job = renewed
        finally:
            future.cancel()  # no-op once answered; otherwise the batcher drops the item
        try:
            answer: Reply | BaseException = future.result()
        except Exception as exc:
            answer = exc
        await self._record(job, answer)

    async def _record(self, job: Job, answer: Reply | BaseException) -> None:
        outcome = outcome_of(answer)
        now = self.clock()
        if outcome.result is not None:
            done, counter = finish(job, now=now, result=outcome.result), "succeeded"
        elif outcome.retryable and job.attempts < job.max_attempts:
            delay = self.backoff.delay_s(job.attempts)
            error = outcome.error or error_info("no answer", kind="worker_error")
            done, counter = retry_later(job, not_before=now + delay, error=error), "retried"
        else:
            error = dict(outcome.error or error_info("no answer", kind="worker_error"))
            if outcome.retryable:
                error["message"] = f"gave up after {job.attempts} attempts: {error['message']}"
            done, counter = finish(job, now=now, error=error), "failed"
        if not await self.store.replace(done):
            self.stats.dropped += 1  # cancelled while it ran: the cancellation stands
            return
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self.board.post(done)

"""Workers: take jobs from the store, send them through a MicroBatcher, write what came back.

Each worker is a task that loops: claim the oldest due job (compare-and-set, so two workers
never both win it), submit it to the shared batcher, and wait. Several workers waiting at once
is what fills a batch: the number of workers is the number of jobs in flight, and it can change
while the pool runs (`scale`). A worker removed while busy first finishes its job.

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

from ..batching.batcher import MicroBatcher
from ..batching.loops import call_in_loop
from ..wire.upstream import Call, Reply
from ._board import JobBoard
from ._records import Job, Status, claim, error_info, finish, renew, retry_later
from .retry import Backoff, outcome_of
from .store import JobStore

log = logging.getLogger(__name__)


@dataclass
class PoolStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0  # attempts whose job was cancelled or taken over meanwhile


def call_for(request: dict) -> Call:
    prompt = request["prompt"]
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    return Call(request, prompts, int(request.get("n") or 1), stream=False, include_usage=False)


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
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._busy: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._claiming = asyncio.Lock()

    @staticmethod
    def _check(workers: int) -> int:
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be a whole number >= 0, got {workers!r}")
        return workers

    @property
    def workers(self) -> int:
        return self._target

    @property
    def busy(self) -> int:
        return len(self._busy)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._spawn()

    def scale(self, workers: int) -> None:
        """Run `workers` workers from now on; callable from any thread."""
        self._target = self._check(workers)
        if self._loop is not None and self._loop.is_running():  # else start() spawns them
            call_in_loop(self._loop, self._spawn)

    def _spawn(self) -> None:
        for index in range(self._target):
            if index not in self._tasks:
                task = asyncio.ensure_future(self._work(index))
                self._tasks[index] = task
                task.add_done_callback(lambda _, index=index: self._tasks.pop(index, None))
        self.board.nudge()  # idle workers above the new count wake up and leave

    async def aclose(self) -> None:
        """Stop every worker now. Jobs they held stay `running` until their lease runs out,
        and are then claimed again: stopping loses nothing."""
        self._target = 0
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one worker ----------------------------------------------------------------------------
    async def _work(self, index: int) -> None:
        me = f"{self.name}/{index}"
        while index < self._target:
            mark = self.board.mark()
            try:
                async with self._claiming:  # one claim at a time in this process: see _claim
                    job = await self._claim(me)
                if job is None:
                    await self.board.wait(mark, await self._until_due())
                    continue
                self._busy.add(index)
                await self._attempt(job)
            except Exception:  # the store is unreachable, say: log, wait a moment, go on
                log.exception("worker %s failed; it carries on", me)
                await self.board.wait(mark, self.board.fallback_s)
            finally:
                self._busy.discard(index)

    async def _until_due(self) -> float:
        due = await self.store.next_due_at()
        return self.board.fallback_s if due is None else due - self.clock()

    async def _claim(self, me: str) -> Job | None:
        now = self.clock()
        # Workers of this process claim one at a time, so they never race each other for the
        # same job, and a few candidates are enough (other processes may take some of them).
        for job in await self.store.due_work(now, limit=8):
            # subtle: a store may read the index and the job at different moments (Redis does),
            # so the job may have been claimed in between: trust its own data, not the index.
            if job.ready_at is None or job.ready_at > now:
                continue
            taken = claim(job, worker=me, now=now, lease_s=self.lease_s)
            if not await self.store.replace(taken):
                continue  # another worker was quicker
            self.board.post(taken)
            if taken.status is Status.RUNNING:
                self.stats.claimed += 1
                return taken
            self.stats.failed += 1  # its worker died on the last attempt: a dead letter now
        return None

    async def _attempt(self, job: Job) -> None:
        try:
            future = self.batcher.submit_nowait(
                call_for(job.request), timeout_s=self.attempt_timeout_s
            )
        except Exception as exc:  # the batcher is full or closed: an attempt that failed
            await self._record(job, exc)
            return
        try:
            while not future.done():
                changed = self.board.mark(job.id)
                waiter = asyncio.ensure_future(changed.wait())
                await asyncio.wait(
                    {future, waiter}, timeout=self.lease_s / 3, return_when=asyncio.FIRST_COMPLETED
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
            done, counter = retry_later(job, not_before=now + delay, error=outcome.error), "retried"
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

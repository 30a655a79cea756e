"""The worker pool against stores that misbehave in the ways real ones can."""

from __future__ import annotations

import asyncio
import time

import pytest

from inferlab.batching.batcher import MicroBatcher
from inferlab.jobs import SQLiteJobStore, Status, WorkerPool
from inferlab.jobs._board import JobBoard
from inferlab.jobs._records import claim, new_job
from inferlab.jobs.service import JobService
from inferlab.jobs.settings import JobSettings
from inferlab.jobs.workers import MAX_WORKERS
from inferlab.wire.upstream import Reply, Upstream

pytestmark = pytest.mark.anyio


class StaleIndexStore:
    """A SQLite store whose due_work answers from a stale index, as a Redis read can (index
    first, data a moment later): it returns every unfinished job, due or not."""

    def __init__(self, inner: SQLiteJobStore):
        self.inner = inner
        self.asked = asyncio.Event()
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def due_work(self, now, limit):
        self.calls += 1
        if self.calls >= 3:
            self.asked.set()
        return [
            job
            for job in await self.inner.list(None, limit)
            if job.status in (Status.QUEUED, Status.RUNNING)
        ]


async def test_a_worker_trusts_the_jobs_own_data_not_a_stale_index(tmp_path):
    """A job another worker holds (lease 60 s ahead, its last attempt) must not be taken over
    and failed as 'worker lost' just because the index said it was due."""
    store = StaleIndexStore(SQLiteJobStore(tmp_path / "jobs.db"))
    job, _ = await store.inner.add(
        new_job({"prompt": "x"}, now=time.time(), max_attempts=1), max_unfinished=10
    )
    held = claim(job, worker="someone else", now=time.time(), lease_s=60)
    assert await store.inner.replace(held)

    async def never_called(items):
        raise AssertionError("nothing is due, so nothing may be sent")

    board = JobBoard(fallback_s=0.01)
    pool = WorkerPool(store, MicroBatcher(never_called), board, workers=1, lease_s=60)
    pool.start()
    try:
        await asyncio.wait_for(store.asked.wait(), 10)  # the worker looked three times
    finally:
        await pool.aclose()
        await store.inner.close()
    assert pool.stats.failed == 0 and pool.stats.claimed == 0


class CountingStore:
    """A store that counts its reads, and says when `versions` (the board's poll) has run
    three times since the store was read `gets_first` times."""

    def __init__(self, inner: SQLiteJobStore, gets_first: int):
        self.inner = inner
        self.gets = self.version_reads = 0
        self.polled = asyncio.Event()
        self.gets_first = gets_first

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def get(self, job_id):
        self.gets += 1
        return await self.inner.get(job_id)

    async def versions(self, job_ids):
        self.version_reads += self.gets >= self.gets_first
        if self.version_reads >= 3:
            self.polled.set()
        return await self.inner.versions(job_ids)


async def test_idle_workers_are_not_tasks_and_cost_no_polling(tmp_path):
    """A pool of MAX_WORKERS idle workers runs one claimer task, not one task per worker, and
    a bound past it is refused with a clear ValueError (the API's 400)."""
    store = SQLiteJobStore(tmp_path / "jobs.db")
    board = JobBoard(fallback_s=0.01)
    pool = WorkerPool(store, MicroBatcher(lambda items: items), board, workers=MAX_WORKERS)
    before = len(asyncio.all_tasks())
    pool.start()
    try:
        board.nudge()
        await asyncio.sleep(0)  # (one turn of the loop: no wait on the clock)
        assert len(asyncio.all_tasks()) - before <= 2
        with pytest.raises(ValueError, match=f"0 to {MAX_WORKERS}"):
            pool.scale(10_000_000)
        assert pool.workers == MAX_WORKERS and pool.busy == 0
    finally:
        await pool.aclose()
        await store.close()


def a_service(store, **options):
    upstream = Upstream("http://127.0.0.1:9/v1")  # never called: no workers
    return JobService(store, upstream, workers=0, fallback_poll_s=0.02, **options)


async def test_long_polls_read_the_store_once_and_share_one_poller(tmp_path):
    """100 long-polls on a queued job: 100 reads, then only the board's shared poller asks
    the store (one query a round, for all of them). A cancel in this process wakes them with
    no read at all; one made by another process (a second service on the same file) is found
    by that poller, which reads the job once for everyone."""
    store = CountingStore(SQLiteJobStore(tmp_path / "jobs.db"), gets_first=100)
    other_store = SQLiteJobStore(tmp_path / "jobs.db")
    service, other = a_service(store), a_service(other_store)
    await service.start()
    await other.start()
    try:
        local = (await service.submit({"prompt": "a"})).job
        remote = (await service.submit({"prompt": "b"})).job
        polls = [
            asyncio.ensure_future(service.get(job.id, wait_s=30))
            for job in (local, remote)
            for _ in range(50)
        ]
        await asyncio.wait_for(store.polled.wait(), 10)  # 100 reads, then 3 rounds of polling
        assert store.gets == 100  # each long-poll read its job once, and never again

        await service.cancel(local.id)  # reads it once, writes it, posts it on the board
        await other.cancel(remote.id)  # posts on the other service's board only
        done = await asyncio.wait_for(asyncio.gather(*polls), 30)
        assert {job.status for job in done} == {Status.CANCELLED}
        assert store.gets == 100 + 1 + 1  # the cancel's read, and the poller's read of `remote`
    finally:
        for poll in polls:
            poll.cancel()
        await service.aclose()
        await other.aclose()


def test_job_settings_take_0_to_max_workers():
    """0 workers is a front that only accepts (as benchmarks/jobs.py starts one); past
    MAX_WORKERS the command refuses, as PUT /admin/workers does."""
    assert JobSettings(upstream="http://127.0.0.1:8000/v1", workers=0).workers == 0
    with pytest.raises(ValueError, match=f"from 0 to {MAX_WORKERS}"):
        JobSettings(upstream="http://127.0.0.1:8000/v1", workers=MAX_WORKERS + 1)


async def test_once_every_worker_holds_a_job_their_batch_leaves_without_waiting_to_fill(
    tmp_path,
):
    """Two workers, a batch of eight and a minute's wait to fill it: once both workers hold a
    job no other job can join, so the claimer flushes, and the jobs finish long before the
    minute. With a worker to spare the batcher would wait as configured."""
    store = SQLiteJobStore(tmp_path / "jobs.db")
    for i in range(2):
        await store.add(
            new_job({"prompt": f"p{i}"}, now=time.time(), max_attempts=1), max_unfinished=9
        )
    sent = []

    async def answer(calls):
        sent.append(len(calls))
        return [Reply(200, {"choices": [{"text": "ok", "index": 0}]}) for _ in calls]

    board = JobBoard(fallback_s=0.01)
    batcher = MicroBatcher(
        answer, max_batch_size=8, batch_wait_timeout_s=60, dispatch_when_idle=False
    )
    pool = WorkerPool(store, batcher, board, workers=2)

    async def both_succeeded():
        while pool.stats.succeeded < 2:
            await board.wait(board.mark(), 1.0)

    pool.start()
    try:
        await asyncio.wait_for(both_succeeded(), 10)  # not the minute the batch would wait
    finally:
        await pool.aclose()
        await batcher.aclose()
        await store.close()
    assert sent == [2] and batcher.stats.flush_reasons["flush"] == 1


async def test_a_cancel_that_lands_as_the_mark_is_set_is_never_swallowed():
    """Python 3.11's wait_for returns the result, and drops the cancel, when the awaited event
    and the cancel land in the same turn of the loop. Land the cancel 0 to 5 turns after the
    mark is set, which covers that turn whatever asyncio's inner steps: while the wait has not
    returned, a cancel must stand."""
    cancelled = 0
    for turns in range(6):
        board = JobBoard(fallback_s=60)
        waiting = asyncio.ensure_future(board.wait(board.mark(), 60))
        for _ in range(3):
            await asyncio.sleep(0)  # (turns of the loop, not time: it parks on the mark)
        board.nudge()
        for _ in range(turns):
            await asyncio.sleep(0)
        if waiting.done():
            assert waiting.result() is True  # it returned before the cancel: nothing to lose
            continue
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        cancelled += 1
    assert cancelled >= 2  # the race's turn is among them


class SwallowingBoard(JobBoard):
    """A board whose wait loses a cancel, as 3.11's wait_for does in the race above (or a store
    library that waits that way): the claimer must stop on aclose() all the same."""

    def __init__(self):
        super().__init__(fallback_s=60)
        self.parked = asyncio.Event()

    async def wait(self, mark, timeout_s):
        self.parked.set()
        try:
            return await super().wait(mark, timeout_s)
        except asyncio.CancelledError:
            return True  # as if the mark had been set first


async def test_aclose_ends_the_claimer_even_when_its_cancel_is_swallowed(tmp_path):
    store = SQLiteJobStore(tmp_path / "jobs.db")
    board = SwallowingBoard()
    pool = WorkerPool(store, MicroBatcher(lambda items: items), board, workers=1)
    pool.start()
    try:
        await asyncio.wait_for(board.parked.wait(), 10)  # nothing due: the claimer waits
        await asyncio.wait_for(pool.aclose(), 10)  # before the flag: TimeoutError, a hang
    finally:
        await store.close()


class SwallowingStore:
    """A store whose due_work loses a cancel and answers with the due jobs, as a library that
    waits with 3.11's wait_for can: the claimer carries on with jobs in hand after aclose()."""

    def __init__(self, inner: SQLiteJobStore):
        self.inner = inner
        self.parked = asyncio.Event()
        self._never = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def due_work(self, now, limit):
        self.parked.set()
        try:
            await self._never.wait()
        except asyncio.CancelledError:
            pass  # swallowed: answer as if the read had finished first
        return await self.inner.due_work(now, limit)


async def test_a_closed_pool_starts_no_attempt_even_when_a_cancel_is_swallowed(tmp_path):
    """aclose() returns with no worker busy and nothing sent; the job the claimer took on its
    way out stays `running` until its lease ends, then is claimed again (nothing lost)."""
    store = SwallowingStore(SQLiteJobStore(tmp_path / "jobs.db"))
    await store.inner.add(
        new_job({"prompt": "x"}, now=time.time(), max_attempts=3), max_unfinished=9
    )
    batcher = MicroBatcher(lambda items: items)
    pool = WorkerPool(store, batcher, JobBoard(fallback_s=60), workers=1)
    pool.start()
    try:
        await asyncio.wait_for(store.parked.wait(), 10)
        await asyncio.wait_for(pool.aclose(), 10)
        assert pool.busy == 0 and batcher.stats.submitted == 0
    finally:
        await batcher.aclose(drain=False)
        await store.inner.close()

"""The worker pool against stores that misbehave in the ways real ones can."""

from __future__ import annotations

import asyncio
import time

import pytest

from inferlab.batching.batcher import MicroBatcher
from inferlab.jobs import SQLiteJobStore, Status, WorkerPool
from inferlab.jobs._board import JobBoard
from inferlab.jobs._records import claim, new_job

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

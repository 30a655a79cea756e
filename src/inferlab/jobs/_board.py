"""A notice board for job changes, so waiters wake at once instead of polling the store.

Everything in this process that changes a job posts it here: the API (new and cancelled jobs),
workers and the webhook sender. Long-polls, event streams and idle workers wait on it:

    mark = board.mark(job_id)       # take the mark first,
    job = await store.get(job_id)   # then read the store,
    await board.wait(mark, 5.0)     # and a change made in between is not missed.

A change made by another process (a second worker machine on Redis, or the process that ran
before a restart) posts nothing here, so every wait also ends after `fallback_s` at most, and
the waiter reads the store again.
"""

from __future__ import annotations

import asyncio

from ._records import Job

WORK = "*work*"  # the mark of "some job may have become claimable, or a webhook due"


class JobBoard:
    def __init__(self, fallback_s: float = 0.5):
        self.fallback_s = fallback_s
        self._marks: dict[str, asyncio.Event] = {}  # job id (or WORK) -> set at its next change

    def post(self, job: Job) -> None:
        self._set(job.id)
        if job.ready_at is not None or job.callback_at is not None:
            self._set(WORK)

    def _set(self, key: str) -> None:
        event = self._marks.pop(key, None)
        if event is not None:
            event.set()

    def nudge(self) -> None:
        """Wake everyone waiting for work (to recount themselves, say)."""
        self._set(WORK)

    def mark(self, key: str = WORK) -> asyncio.Event:
        """An event that is set at the next change of job `key` (or of any work)."""
        return self._marks.setdefault(key, asyncio.Event())

    async def wait(self, mark: asyncio.Event, timeout_s: float) -> bool:
        """Wait until `mark` is set (True) or timeout_s, capped at `fallback_s`, passes."""
        timeout = max(0.0, min(timeout_s, self.fallback_s))
        try:
            await asyncio.wait_for(mark.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

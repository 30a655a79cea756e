"""A notice board for job changes, so waiters wake at once instead of polling the store.

Everything in this process that changes a job posts it here: the API (new and cancelled jobs),
workers and the webhook sender. Long-polls and event streams watch one job; they read the store
once, then take each newer version from the board, never from the store again:

    with board.watch(job_id) as watch:  # watch first,
        job = await store.get(job_id)   # then read the store,
        job = await watch.next(job, 5.0)  # and a change made in between is not missed.

A change made by another process (a second server on the same Redis, or the process that ran
before a restart) posts nothing here. So while anyone watches, one shared poller asks the store
every `fallback_s` for the versions of all watched jobs at once (one query, however many
waiters), and posts the jobs that moved. The claimer of the worker pool and the webhook sender
wait for "some work" (`WORK`) the same way, each ending its wait after `fallback_s` at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._records import Job

log = logging.getLogger(__name__)

WORK = "*work*"  # the mark of "some job may have become claimable, or a webhook due"

Versions = Callable[[list[str]], Awaitable[dict[str, int]]]  # job ids -> stored versions
Load = Callable[[str], Awaitable[Job | None]]


async def wait_set(event: asyncio.Event, timeout_s: float | None) -> bool:
    """True once `event` is set, False if `timeout_s` passed first; a cancel always stands.

    subtle: not `asyncio.wait_for`, which on Python 3.11 swallows a cancel that arrives in the
    same turn of the loop as the event (bpo-42130): it returns as if nothing happened, and a
    loop that was told to stop (the claimer, the webhook sender) runs on. `asyncio.wait` never
    swallows one; the waiter it leaves behind is ours to cancel.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()
    return bool(done)


@dataclass(eq=False)
class Watch:
    """One job's newest version known here, and an event set whenever a newer one arrives."""

    job_id: str
    latest: Job | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0

    def offer(self, job: Job) -> None:
        if self.latest is None or job.version > self.latest.version:
            self.latest = job
            self.changed.set()
            self.changed = asyncio.Event()  # waiters hold the old one, which stays set

    async def next(self, seen: Job, timeout_s: float | None) -> Job | None:
        """The first version newer than `seen`, or None once timeout_s passed."""
        self.offer(seen)  # the poller then compares with it, and older watchers wake
        while self.latest is None or self.latest.version <= seen.version:
            if not await wait_set(self.changed, timeout_s):
                return None
        return self.latest


class JobBoard:
    def __init__(self, fallback_s: float = 0.5):
        self.fallback_s = fallback_s
        self._marks: dict[str, asyncio.Event] = {}  # WORK -> set at its next change
        self._watches: dict[str, Watch] = {}  # job id -> its watch, while anyone watches
        self._store: tuple[Versions, Load] | None = None
        self._poller: asyncio.Task[None] | None = None
        self.polls = 0  # rounds of the shared poller, for tests and dashboards

    def read_from(self, versions: Versions, load: Load) -> None:
        """Where the shared poller finds changes made by other processes."""
        self._store = (versions, load)

    def post(self, job: Job) -> None:
        self._set(job.id)  # a worker's attempt waits on its job's mark (cancelled meanwhile?)
        watch = self._watches.get(job.id)
        if watch is not None:
            watch.offer(job)
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
        """An event that is set at the next change of job `key` (or of any work); changes made
        in this process only. The worker holding a job waits on it, since its lease renewals
        would notice another process's change anyway."""
        return self._marks.setdefault(key, asyncio.Event())

    async def wait(self, mark: asyncio.Event, timeout_s: float) -> bool:
        """Wait until `mark` is set (True) or timeout_s, capped at `fallback_s`, passes."""
        return await wait_set(mark, max(0.0, min(timeout_s, self.fallback_s)))

    # -- watching one job ----------------------------------------------------------------------
    @contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """Watch `job_id` for as long as the block runs; every watcher of a job shares one."""
        watch = self._watches.setdefault(job_id, Watch(job_id))
        watch.watchers += 1
        if self._store is not None and (self._poller is None or self._poller.done()):
            self._poller = asyncio.ensure_future(self._poll())
        try:
            yield watch
        finally:
            watch.watchers -= 1
            if watch.watchers == 0 and self._watches.get(job_id) is watch:
                del self._watches[job_id]

    async def _poll(self) -> None:
        """The one poller: while anyone watches, one versions query per `fallback_s`."""
        assert self._store is not None
        versions, load = self._store
        while self._watches:
            await asyncio.sleep(self.fallback_s)
            try:
                stored = await versions(list(self._watches))
                self.polls += 1
                for job_id, version in stored.items():
                    watch = self._watches.get(job_id)
                    known = -1 if watch is None or watch.latest is None else watch.latest.version
                    if watch is not None and version > known:
                        job = await load(job_id)  # only the jobs that moved are read
                        if job is not None:
                            watch.offer(job)
            except Exception:  # the store is unreachable, say: try again next round
                log.exception("job board poller failed; it carries on")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)

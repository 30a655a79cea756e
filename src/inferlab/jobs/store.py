"""Where jobs live: a small interface, and SQLite behind it (Redis in redis_store.py).

A store keeps jobs and answers three questions quickly: which jobs may a worker claim now
(`due_work`), which finished jobs still owe a webhook (`due_callbacks`), and when is the next
of either (`next_due_at`). It changes a job only by compare-and-set (`replace`), so the state
machine in _records.py runs unchanged over any store, and racing writers cannot both win.

SQLite: one file, WAL journal, `synchronous=FULL`: when `add()` returns, the job is on disk,
and the 202 that follows is a promise the process can keep after a SIGKILL or a power cut.
Writes that arrive together share one transaction and one disk sync (group commit).
Every call runs on one thread of its own, so the event loop never waits on the disk and the
connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import builtins  # a store has a method `list`: annotations after it say builtins.list
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, cast

from ..errors import IdempotencyKeyReusedError, QueueFullError
from ._records import UNFINISHED, Job, Status

T = TypeVar("T")


class JobStore(Protocol):
    async def open(self) -> None:
        """Check the store before serving (Redis: that it keeps what it acknowledges)."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers now (for /health)."""
        ...

    async def add(self, job: Job, *, max_unfinished: int) -> tuple[Job, bool]:
        """Store a new job; returns (job, True). With an idempotency key already used, returns
        (that earlier job, False) and stores nothing. Raises QueueFullError, and
        IdempotencyKeyReusedError if the earlier job was made of another request."""
        ...

    async def add_many(
        self, jobs: builtins.list[Job], *, max_unfinished: int
    ) -> builtins.list[tuple[Job, bool]]:
        """`add` for many jobs at once, all or nothing, in one write (one disk sync): one
        (job, created) per job, in order, or an exception and nothing stored. A key used twice
        in `jobs` makes one job, as two `add`s would."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def versions(self, job_ids: list[str]) -> dict[str, int]:
        """The stored version of each of these jobs that exists: one round trip for them all."""
        ...

    async def replace(self, job: Job) -> bool:
        """Write `job` if the stored one still has `job.version - 1`; False if it changed."""
        ...

    async def replace_many(self, jobs: builtins.list[Job]) -> builtins.list[bool]:
        """`replace` for each job, in one write (a claimer's round): one answer a job, in
        order. Each compare-and-set stands alone: one may lose while the others win."""
        ...

    async def due_work(self, now: float, limit: int) -> list[Job]: ...

    async def due_callbacks(self, now: float, limit: int) -> list[Job]: ...

    async def next_due_at(self) -> float | None: ...

    async def list(self, status: Status | None, limit: int) -> builtins.list[Job]:
        """Newest first."""
        ...

    async def counts(self) -> dict[Status, int]: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL,          -- claimable from (queued: not_before; running: lease end)
    callback_at REAL,       -- a webhook is due from
    idempotency_key TEXT UNIQUE,
    data TEXT NOT NULL      -- the whole Job as JSON
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (ready_at) WHERE ready_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_callback ON jobs (callback_at) WHERE callback_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""


def _row(job: Job) -> tuple[object, ...]:
    return (
        job.id,
        job.status.value,
        job.version,
        job.created_at,
        job.ready_at,
        job.callback_at,
        job.idempotency_key,
        job.to_json(),
    )


@dataclass(frozen=True)
class _Write:
    """One caller's write waiting for the next group commit: jobs to add, or to replace."""

    kind: str  # "add" | "replace"
    jobs: builtins.list[Job]
    max_unfinished: int = 0  # (adds only) the queue's bound


def _settle(future: asyncio.Future[object], outcome: object) -> None:
    if future.done():  # its caller gave up waiting (a client that hung up)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _settle_all(settled: builtins.list[tuple[asyncio.Future[object], object]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


class SQLiteJobStore:
    """Jobs in one SQLite file (":memory:" for a throwaway store)."""

    def __init__(self, path: str | Path = "jobs.db"):
        self.path = str(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inferlab-sqlite")
        self._db: sqlite3.Connection = self._thread.submit(self._open).result()
        self._writes: builtins.list[tuple[_Write, asyncio.Future[object]]] = []
        self._writes_lock = threading.Lock()
        self._commit_pending = False

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)  # transactions are explicit
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")  # another process may hold the write lock
        db.executescript(_SCHEMA)
        return db

    async def open(self) -> None:
        """Nothing to check: `synchronous=FULL` is set on opening, above."""

    async def ping(self) -> None:
        def ping() -> None:
            self._db.execute("SELECT 1")

        await self._run(ping)

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    # -- writes: group commit ------------------------------------------------------------------
    # Writes that arrive while a commit is under way wait for the next one and share it: a burst
    # of submissions, or 32 workers finishing at once, costs a few disk syncs, not one each.

    async def add(self, job: Job, *, max_unfinished: int) -> tuple[Job, bool]:
        return (await self.add_many([job], max_unfinished=max_unfinished))[0]

    async def add_many(
        self, jobs: builtins.list[Job], *, max_unfinished: int
    ) -> builtins.list[tuple[Job, bool]]:
        added = await self._write(_Write("add", jobs, max_unfinished))
        return cast(builtins.list[tuple[Job, bool]], added)

    async def replace(self, job: Job) -> bool:
        return (await self.replace_many([job]))[0]

    async def replace_many(self, jobs: builtins.list[Job]) -> builtins.list[bool]:
        return cast(builtins.list[bool], await self._write(_Write("replace", jobs)))

    async def _write(self, write: _Write) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        with self._writes_lock:
            self._writes.append((write, future))
            start_commit = not self._commit_pending
            self._commit_pending = True
        if start_commit:
            self._thread.submit(self._commit_writes)
        return await future

    def _commit_writes(self) -> None:
        """On the store's thread: every waiting write in one transaction, one disk sync."""
        with self._writes_lock:
            group, self._writes, self._commit_pending = self._writes, [], False
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock: count and insert as one
            # Only additions need the count (the queue's bound): a group of claims and finishes,
            # most commits under load, skips a scan of every unfinished job.
            adds = any(write.kind == "add" for write, _ in group)
            unfinished = self._unfinished() if adds else 0
            outcomes: builtins.list[object] = []
            for write, _ in group:
                if write.kind == "replace":
                    outcomes.append([self._compare_and_set(job) for job in write.jobs])
                else:
                    outcome, unfinished = self._add_all(write, unfinished)
                    outcomes.append(outcome)
            db.execute("COMMIT")
        except Exception as exc:  # the disk is full, say: every write of the group fails with it
            if db.in_transaction:
                db.execute("ROLLBACK")
            outcomes = [exc] * len(group)
        # One wake-up of the event loop for the whole group, not one per write: each
        # call_soon_threadsafe writes to the loop's self-pipe, a system call.
        settled = [(future, outcome) for (_, future), outcome in zip(group, outcomes, strict=True)]
        for loop in {future.get_loop() for future, _ in settled}:
            mine = [(f, o) for f, o in settled if f.get_loop() is loop]
            loop.call_soon_threadsafe(_settle_all, mine)

    def _add_all(self, write: _Write, unfinished: int) -> tuple[object, int]:
        """One submission's jobs, inside the group's transaction: all of them or none.

        A savepoint, so that a submission refused halfway (no room for its last job, a key
        reused) takes back only its own rows, and the other writes of the group still commit.
        Returns its outcome and the count of unfinished jobs after it."""
        db = self._db
        db.execute("SAVEPOINT submission")
        added: builtins.list[tuple[Job, bool]] = []
        fresh = 0  # jobs this submission makes (a repeated key makes none)
        full = False  # no room left: the rest is only counted, then the submission refused
        counted_keys: set[str] = set()
        try:
            for index, job in enumerate(write.jobs):
                earlier = self._by_key(job.idempotency_key)  # (sees this submission's rows too)
                if earlier is not None:
                    if earlier.request_hash != job.request_hash:
                        key = cast(str, job.idempotency_key)
                        raise IdempotencyKeyReusedError(key, earlier.id, index=index)
                    added.append((earlier, False))
                elif job.idempotency_key in counted_keys:
                    continue  # counted once already
                elif full or unfinished + fresh >= write.max_unfinished:
                    # Counted, not stored: the refusal says how many jobs the submission needs
                    # (more than the bound: it never fits, and a 429 would be retried for ever).
                    full = True
                    fresh += 1
                    if job.idempotency_key is not None:
                        counted_keys.add(job.idempotency_key)
                else:
                    db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row(job))
                    added.append((job, True))
                    fresh += 1
            if full:
                raise QueueFullError(unfinished, adding=fresh)
        except (QueueFullError, IdempotencyKeyReusedError) as refused:
            db.execute("ROLLBACK TO submission")
            db.execute("RELEASE submission")
            return refused, unfinished
        db.execute("RELEASE submission")
        return added, unfinished + fresh

    def _unfinished(self) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", tuple(s.value for s in UNFINISHED)
        ).fetchone()
        return int(count)

    def _compare_and_set(self, job: Job) -> bool:
        cursor = self._db.execute(
            "UPDATE jobs SET status = ?, version = ?, ready_at = ?, callback_at = ?, data = ? "
            "WHERE id = ? AND version = ?",
            (
                job.status.value,
                job.version,
                job.ready_at,
                job.callback_at,
                job.to_json(),
                job.id,
                job.version - 1,
            ),
        )
        return cursor.rowcount == 1

    def _by_key(self, key: str | None) -> Job | None:
        if key is None:
            return None
        row = self._db.execute("SELECT data FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return None if row is None else Job.from_json(row[0])

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        rows = await self._select("SELECT data FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    async def versions(self, job_ids: builtins.list[str]) -> dict[str, int]:
        def versions() -> dict[str, int]:
            found: dict[str, int] = {}
            for start in range(0, len(job_ids), 500):  # SQLite takes at most 999 parameters
                chunk = job_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, version FROM jobs WHERE id IN ({marks})"
                found.update(self._db.execute(sql, chunk))
            return found

        return await self._run(versions)

    async def due_work(self, now: float, limit: int) -> builtins.list[Job]:
        return await self._select(
            "SELECT data FROM jobs WHERE ready_at <= ? ORDER BY ready_at LIMIT ?", (now, limit)
        )

    async def due_callbacks(self, now: float, limit: int) -> builtins.list[Job]:
        return await self._select(
            "SELECT data FROM jobs WHERE callback_at <= ? ORDER BY callback_at LIMIT ?",
            (now, limit),
        )

    async def next_due_at(self) -> float | None:
        def next_due() -> float | None:
            (work,) = self._db.execute("SELECT MIN(ready_at) FROM jobs").fetchone()
            (callback,) = self._db.execute("SELECT MIN(callback_at) FROM jobs").fetchone()
            times = [t for t in (work, callback) if t is not None]
            return min(times) if times else None

        return await self._run(next_due)

    async def list(self, status: Status | None, limit: int) -> builtins.list[Job]:
        if status is None:
            return await self._select(
                "SELECT data FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
            )
        return await self._select(
            "SELECT data FROM jobs WHERE status = ? ORDER BY created_at DESC LIMIT ?",
            (status.value, limit),
        )

    async def counts(self) -> dict[Status, int]:
        def counts() -> dict[Status, int]:
            found = dict(self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
            return {status: found.get(status.value, 0) for status in Status}

        return await self._run(counts)

    async def _select(self, sql: str, params: tuple[object, ...]) -> builtins.list[Job]:
        def select() -> builtins.list[Job]:
            return [Job.from_json(row[0]) for row in self._db.execute(sql, params)]

        return await self._run(select)

    async def close(self) -> None:
        def close() -> None:
            self._db.close()

        await self._run(close)
        self._thread.shutdown(wait=True)

"""The job queue alone: submit -> claim -> finish with no model, in this process.

The real `JobService` (store, board, worker pool, micro-batcher) in front of a model that
answers at once, so what is left is the queue's own cost: the store's writes and syncs, the
claims, the long-poll wake-ups. No HTTP: the job API's front is measured in jobs.py.

    rate = asyncio.run(queue_throughput(SQLiteJobStore(path), jobs=4000))
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _harness import free_port

from inferlab.jobs.service import JobService
from inferlab.jobs.store import JobStore
from inferlab.wire.upstream import Call, Reply

__all__ = ["fsync_s", "queue_throughput", "redis_server"]


class InstantModel:
    """An upstream that answers every call at once: the queue is all that is measured."""

    async def complete(self, calls: list[Call]) -> list[Reply]:
        return [Reply(200, {"choices": [{"text": "ok", "index": 0}]}) for _ in calls]

    async def aclose(self) -> None:
        pass


async def queue_throughput(
    store: JobStore, *, jobs: int, workers: int = 256, producers: int = 64
) -> float:
    """Jobs per second from the first submission to the last result seen by its waiter:
    `producers` submitting one after another, each job long-polled until it finished."""
    service = JobService(
        store,
        InstantModel(),  # type: ignore[arg-type]
        workers=workers,
        max_queue_size=jobs + 1,
        max_batch_size=64,
        batch_wait_timeout_s=0.001,
    )
    await service.start()
    waiters: list[asyncio.Task[object]] = []

    async def produce(first: int) -> None:
        for i in range(first, jobs, producers):
            submitted = await service.submit({"prompt": f"job {i}", "max_tokens": 4})
            waiters.append(asyncio.ensure_future(service.get(submitted.job.id, wait_s=60)))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(produce(first) for first in range(producers)))
        finished = await asyncio.gather(*waiters)
        elapsed = time.perf_counter() - started
    finally:
        await service.aclose()
    succeeded = sum(job.status.value == "succeeded" for job in finished)  # type: ignore[attr-defined]
    assert succeeded == jobs, f"only {succeeded} of {jobs} jobs succeeded"
    return jobs / elapsed


def fsync_s(folder: Path, repeats: int = 50) -> float:
    """The median time of one fsync of a small write in `folder`: an acknowledgement's floor."""
    times = []
    with open(folder / "fsync.probe", "wb") as probe:
        for _ in range(repeats):
            probe.write(b"x" * 128)
            probe.flush()
            started = time.perf_counter()
            os.fsync(probe.fileno())
            times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextmanager
def redis_server(folder: Path) -> Iterator[str | None]:
    """A redis-server of our own that syncs every write (what SQLite promises), or None."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder),
         "--appendonly", "yes", "--appendfsync", "always"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # it says when it accepts connections
        if "Ready to accept connections" in line:
            break
    threading.Thread(target=process.stdout.read, daemon=True).start()  # a full pipe blocks it
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)

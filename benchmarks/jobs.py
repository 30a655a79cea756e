"""The job API, measured: how fast it acknowledges, and what queueing costs end to end.

    python benchmarks/jobs.py                 # about a minute

The job server and the model server each run in their own process (see _harness.py), the job
server with its SQLite file in a temporary folder, `synchronous=FULL`: every acknowledgement
is on disk. Three measurements, each printed with its ratio:

1. acknowledgement latency, one client submitting one job at a time (no workers, so nothing
   competes with the submissions): one disk sync per job;
2. a burst of 1,000 submissions at once: group commit lets jobs that arrive together share a
   transaction and a sync, so acknowledgements per second far exceed 1 / (one sync);
3. 400 requests through the job API (32 workers) against the same 400 sent directly with 32
   in flight, to a model server at time_scale 0.1: what the queue, the workers and the
   long-polls cost in completion time and throughput.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _harness import free_port, spawn, stop, wait_until_up

from inferlab.jobs import AsyncJobClient
from inferlab.load.loadgen import run_load
from inferlab.load.metrics import percentile
from inferlab.load.workloads import Workload, fixed

MODEL_PORT, JOBS_PORT = free_port(), free_port()
MODEL = f"http://127.0.0.1:{MODEL_PORT}/v1"
JOBS = f"http://127.0.0.1:{JOBS_PORT}"


def start_jobs(db: Path, workers: int):
    process = spawn(
        "jobs", "--upstream", MODEL, "--port", str(JOBS_PORT), "--db", str(db),
        "--workers", str(workers), "--max-batch-size", "32",
    )  # fmt: skip
    wait_until_up(JOBS, process)
    return process


async def one_at_a_time(n: int) -> list[float]:
    async with AsyncJobClient(JOBS) as client:
        times = []
        for i in range(n):
            started = time.perf_counter()
            await client.submit(f"one {i}", max_tokens=4)
            times.append(time.perf_counter() - started)
        return times


async def burst(n: int) -> tuple[float, list[float]]:
    # One client, a connection per submission in flight (its pool grows; see wire/_http1.py)
    async with AsyncJobClient(JOBS, max_connections=n) as client:
        started = time.perf_counter()

        async def submit(i: int) -> float:
            sent = time.perf_counter()
            await client.submit(f"burst {i}", max_tokens=4)
            return time.perf_counter() - sent

        latencies = await asyncio.gather(*(submit(i) for i in range(n)))
        elapsed = time.perf_counter() - started
    return elapsed, list(latencies)


def main() -> None:
    model = spawn("serve", "--port", str(MODEL_PORT), "--time-scale", "0.1")
    wait_until_up(MODEL, model)
    folder = Path(tempfile.mkdtemp(prefix="inferlab-bench-jobs-"))
    try:
        jobs = start_jobs(folder / "acks.db", workers=0)
        try:
            single = asyncio.run(one_at_a_time(200))
            elapsed, latencies = asyncio.run(burst(1000))
        finally:
            stop(jobs)
        print("1. acknowledgement, one at a time (200 jobs, each on disk before its 202)")
        print(
            f"   p50 {percentile(single, 50) * 1000:.2f} ms, p99 "
            f"{percentile(single, 99) * 1000:.2f} ms, {1 / statistics.fmean(single):.0f}/s"
        )
        print("2. a burst of 1,000 submissions at once")
        print(
            f"   all acknowledged in {elapsed:.2f} s: {1000 / elapsed:.0f}/s, "
            f"{1000 / elapsed * statistics.fmean(single):.1f}x one at a time; p50 "
            f"{percentile(latencies, 50) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.0f} ms"
        )

        workload = Workload(num_requests=400, prompt_tokens=fixed(64), output_tokens=fixed(64))
        direct = asyncio.run(run_load(MODEL, workload, max_concurrency=32)).summary()
        jobs = start_jobs(folder / "e2e.db", workers=32)
        try:
            queued = asyncio.run(run_load(f"{JOBS}/v1", workload, mode="jobs")).summary()
            stats = httpx.get(f"{JOBS}/admin/workers").json()
        finally:
            stop(jobs)
        print("3. 400 requests, 32 in flight at the model server (time_scale 0.1, wall times)")
        for name, s in (("direct", direct), ("job API", queued)):
            print(
                f"   {name:8} {s.request_throughput:6.1f} req/s, result p50 "
                f"{s.e2e.p50 * 1000:6.0f} ms, p99 {s.e2e.p99 * 1000:6.0f} ms"
            )
        print(
            f"   throughput ratio {queued.request_throughput / direct.request_throughput:.2f}; "
            f"jobs succeeded {stats['succeeded']}, failed {stats['failed']}"
        )
    finally:
        stop(model)


if __name__ == "__main__":
    main()

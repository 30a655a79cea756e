"""The job API, measured against its targets: acknowledgements, the queue alone, end to end.

    python benchmarks/jobs.py                 # about a minute on 2 cores

The job server and the model servers each run in their own process (see _harness.py), the job
server with its SQLite file in a temporary folder, `synchronous=FULL`: every acknowledgement
is on disk. What it measures, each figure printed beside its target and their ratio:

1. acknowledgement latency, one client submitting one job at a time (no workers, so nothing
   competes with the submissions): one disk sync per job, so read it against one fsync;
2. a burst of 1,000 jobs at once, as 1,000 submissions and as 10 bulks of 100
   (POST /v1/jobs/batch): group commit lets jobs that arrive together share a transaction and a
   sync, and a bulk shares one request's HTTP and validation too; the floor printed beside the
   1,000 separate ones is the job server's CPU a submission times 1,000;
3. the queue alone (submit -> claim -> finish, no model, no HTTP; _queue.py), on SQLite with
   fsync and on a Redis that syncs every write (`appendfsync always`);
4. 400 requests through the job API (32 workers) against the same 400 sent directly with 32
   in flight, with the model at time_scale 0.1 and at H100 speed (time_scale 1).

The machine's load average is printed beside the figures: on a busy machine they are lower.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from _queue import fsync_s, queue_throughput, redis_server
from collections.abc import Callable
from pathlib import Path

import httpx
from _harness import cpu_s, free_port, spawn, stop, wait_until_up

from inferlab.jobs import AsyncJobClient, JobStore, RedisJobStore, SQLiteJobStore
from inferlab.load.loadgen import run_load
from inferlab.load.metrics import percentile
from inferlab.load.workloads import Workload, fixed

JOBS_PORT = free_port()
JOBS = f"http://127.0.0.1:{JOBS_PORT}"
rows: list[tuple[str, float, str, float, bool]] = []  # (what, figure, unit, target, at most?)


def report(what: str, figure: float, unit: str, target: float, *, at_most: bool) -> None:
    rows.append((what, figure, unit, target, at_most))
    met = figure <= target if at_most else figure >= target
    sign = "<=" if at_most else ">="
    print(
        f"   {what:42} {figure:9.2f} {unit:6} target {sign} {target:g} {unit}: "
        f"ratio {figure / target:5.2f} {'met' if met else 'NOT met'}"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"(load average {one:.2f}, {five:.2f} on {os.cpu_count()} cores)"


def start_jobs(model: str, db: Path, workers: int):
    process = spawn(
        "jobs", "--upstream", model, "--port", str(JOBS_PORT), "--db", str(db),
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


async def burst(n: int, *, per_request: int = 1) -> tuple[float, list[float]]:
    """`n` jobs at once, `per_request` to a request (1: POST /v1/jobs each; more: bulks of
    POST /v1/jobs/batch): the elapsed time, and each job's acknowledgement latency (a job of a
    bulk is acknowledged when its bulk is)."""
    requests = n // per_request
    # One client, a connection per request in flight (its pool grows; see wire/_http1.py)
    async with AsyncJobClient(JOBS, max_connections=requests) as client:
        started = time.perf_counter()

        async def submit(i: int) -> list[float]:
            sent = time.perf_counter()
            if per_request == 1:
                await client.submit(f"burst {i}", max_tokens=4)
            else:
                prompts = [f"bulk {i} {j}" for j in range(per_request)]
                await client.submit_many(prompts, max_tokens=4)
            return [time.perf_counter() - sent] * per_request

        latencies = await asyncio.gather(*(submit(i) for i in range(requests)))
        elapsed = time.perf_counter() - started
    return elapsed, [latency for each in latencies for latency in each]


def acknowledgements(model: str, folder: Path) -> None:
    floor_before_ms = fsync_s(folder) * 1000  # the disk's pace changes: measured both sides
    jobs = start_jobs(model, folder / "acks.db", workers=0)
    bursts = {}  # per request -> (elapsed, latencies, server CPU s, client CPU s)
    try:
        single = asyncio.run(one_at_a_time(200))
        for per_request in (1, 100):
            before = cpu_s(), cpu_s(jobs.pid)
            elapsed, latencies = asyncio.run(burst(1000, per_request=per_request))
            used = cpu_s(jobs.pid) - before[1], cpu_s() - before[0]
            bursts[per_request] = (elapsed, latencies, *used)
    finally:
        stop(jobs)
    floor_ms = statistics.fmean([floor_before_ms, fsync_s(folder) * 1000])
    print(f"1. acknowledgement, one at a time (200 jobs, each on disk before its 202) {load()}")
    print(
        f"   one fsync on this disk: {floor_ms:.2f} ms, the mean of its medians before and after "
        "(the floor of one acknowledgement)"
    )
    print(
        f"   p50 {percentile(single, 50) * 1000:.2f} ms, {1 / statistics.fmean(single):.0f}/s; "
        f"p50 minus one fsync: {percentile(single, 50) * 1000 - floor_ms:.2f} ms of HTTP and CPU"
    )
    report("acknowledgement p99, at rest", percentile(single, 99) * 1000, "ms", 10, at_most=True)
    print(f"2. a burst of 1,000 jobs at once, two ways; target: ack p99 <= 50 ms {load()}")
    print(
        "   (floor: the job server's CPU a job x 1,000. One event loop answers them in turn, "
        "so the last 202 waits for the CPU of the 999 before it)"
    )
    print(
        f"   {'':34} {'p50':>7} {'p99':>7} {'all in':>7} {'server CPU':>14} {'floor':>8} "
        f"{'client CPU':>10}"
    )
    for per_request, name in (
        (1, "1,000 separate POST /v1/jobs"),
        (100, "10 bulks of 100 (/batch)"),
    ):
        elapsed, latencies, server_s, client_s = bursts[per_request]
        print(
            f"   {name:34} {percentile(latencies, 50) * 1000:5.0f}ms "
            f"{percentile(latencies, 99) * 1000:5.0f}ms {elapsed * 1000:5.0f}ms "
            f"{server_s:8.2f} ms/job {server_s * 1000:6.0f}ms {client_s:9.2f}s"
        )
    report("ack p99, burst of 1,000 separate", percentile(bursts[1][1], 99) * 1000, "ms", 50,
           at_most=True)  # fmt: skip
    report("ack p99, burst of 10 bulks x 100", percentile(bursts[100][1], 99) * 1000, "ms", 50,
           at_most=True)  # fmt: skip


def median_of_three(store: Callable[[int], JobStore]) -> float:
    """The queue's rate three times, each on a store of its own; prints the runs, returns
    their median (one run on two shared cores can be a quarter off the next)."""
    rates = [asyncio.run(queue_throughput(store(run), jobs=4000)) for run in range(3)]
    print(f"   runs: {', '.join(f'{rate:,.0f}' for rate in rates)} jobs/s")
    return statistics.median(rates)


def queue_alone(folder: Path) -> None:
    print(f"3. the queue alone: submit -> claim -> finish, 4,000 jobs, no model {load()}")
    rate = median_of_three(lambda run: SQLiteJobStore(folder / f"queue-{run}.db"))
    report("queue throughput, SQLite (fsync)", rate, "jobs/s", 2000, at_most=False)
    with redis_server(folder) as url:
        if url is None:
            print("   Redis: no redis-server installed, skipped")
            return
        rate = median_of_three(lambda run: RedisJobStore(url.replace("/0", f"/{run}")))
        report("queue throughput, Redis (appendfsync always)", rate, "jobs/s", 5000,
               at_most=False)  # fmt: skip


def end_to_end(time_scale: float, target: float, folder: Path) -> None:
    port = free_port()
    model_url = f"http://127.0.0.1:{port}/v1"
    model = spawn("serve", "--port", str(port), "--time-scale", str(time_scale))
    try:
        wait_until_up(model_url, model)
        workload = Workload(num_requests=400, prompt_tokens=fixed(64), output_tokens=fixed(64))
        direct = asyncio.run(run_load(model_url, workload, max_concurrency=32)).summary()
        jobs = start_jobs(model_url, folder / f"e2e-{time_scale}.db", workers=32)
        try:
            before = [cpu_s(), cpu_s(jobs.pid), cpu_s(model.pid)]
            queued = asyncio.run(run_load(f"{JOBS}/v1", workload, mode="jobs")).summary()
            used = [cpu_s(), cpu_s(jobs.pid), cpu_s(model.pid)]
            stats = httpx.get(f"{JOBS}/admin/workers").json()
        finally:
            stop(jobs)
    finally:
        stop(model)
    print(f"4. 400 requests, 32 in flight at the model (time_scale {time_scale:g}) {load()}")
    for name, s in (("direct", direct), ("job API", queued)):
        print(
            f"   {name:8} {s.request_throughput:6.1f} req/s, result p50 "
            f"{s.e2e.p50 * 1000:6.0f} ms, p99 {s.e2e.p99 * 1000:6.0f} ms"
        )
    print(f"   jobs succeeded {stats['succeeded']}, failed {stats['failed']}")
    client, server, model_cpu = (after - start for after, start in zip(used, before, strict=True))
    print(
        f"   CPU during the job run: client {client:.2f} s, job server {server:.2f} s "
        f"({server / 400 * 1000:.1f} ms a job), model server {model_cpu:.2f} s, "
        f"in {queued.duration_s:.2f} s of wall time on {os.cpu_count()} cores"
    )
    ratio = queued.request_throughput / direct.request_throughput
    report(f"job API / direct throughput, time_scale {time_scale:g}", ratio, "x", target,
           at_most=False)  # fmt: skip


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="inferlab-bench-jobs-"))
    port = free_port()
    model_url = f"http://127.0.0.1:{port}/v1"
    model = spawn("serve", "--port", str(port), "--time-scale", "0.1")
    try:
        wait_until_up(model_url, model)
        acknowledgements(model_url, folder)
    finally:
        stop(model)
    queue_alone(folder)
    end_to_end(0.1, 0.7, folder)
    end_to_end(1.0, 0.9, folder)
    print(f"summary {load()}")
    for what, figure, unit, target, at_most in rows:
        met = figure <= target if at_most else figure >= target
        sign = "<=" if at_most else ">="
        print(
            f"   {what:46} {figure:9.2f} {unit:6} ({sign} {target:g}) {'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()

"""Load generators: many requests, on a schedule, through any client, recorded one by one.

    workload = Workload(num_requests=200, output_tokens=exponential(128))   # see workloads.py
    run = await run_load(base_url, workload, request_rate=20.0)         # open loop, Poisson
    run = await run_load(base_url, workload, users=8, think_time_s=0.5)  # closed loop
    run = await run_load(base_url, workload, request_rate=8, clock=inferlab.model_clock())
    print(run.summary().table())

With a `clock` (clock.py), rates and think times are given in model ("H100") time, and the run
comes back in model time: its records, its duration, its summary. Without one, all is wall time.

Open loop: requests arrive on their own clock (Poisson at `request_rate`, or burstier with
`burstiness` < 1, as in vLLM's benchmark), whether or not earlier ones have finished, as users
of a public service do. Closed loop: `users` each wait for their answer (and think) before the
next request, so a slow server slows its own load down. Mix them up and your measurements lie.
Every run is bounded in requests and in time, and always stops. How each mode sends one
request (sync, async, streamed, as a job) is in senders.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass

from ..jobs.client import AsyncJobClient
from ..wire.client import AsyncClient, Client
from .clock import ModelClock
from .metrics import SLO, RequestResult, Summary, summarize
from .senders import MODES, Send, async_sender, jobs_sender, sync_sender
from .workloads import PlannedRequest, Workload, arrival_gaps

# ---------------------------------------------------------------------------------------------
# Runs


@dataclass
class LoadRun:
    records: list[RequestResult]
    started_s: float
    ended_s: float
    in_flight_samples: list[int]
    clock: ModelClock | None = None  # set once the run is in model time (in_model_time)

    def in_model_time(self, clock: ModelClock) -> LoadRun:
        """This run with every record and both ends in model seconds (done once: a run that
        is in model time already comes back as it is)."""
        if self.clock is not None:
            return self
        return LoadRun(
            records=clock.timings(self.records),
            started_s=clock.model_s(self.started_s),
            ended_s=clock.model_s(self.ended_s),
            in_flight_samples=self.in_flight_samples,
            clock=clock,
        )

    def summary(self, slo: SLO | None = None) -> Summary:
        """The run summed up; `summary.drift` compares the client's times with the engine's own
        account, and `summary.table()` says so in a sentence when they disagree."""
        summary = summarize(
            self.records,
            duration_s=self.ended_s - self.started_s,
            slo=slo,
            in_flight_samples=self.in_flight_samples,
        )
        if self.clock is None or summary.drift is None:
            return summary
        # The records are in model seconds already (their engine accounts say time_scale 1);
        # the drift guard's advice names the scale the server really ran at.
        drift = dataclasses.replace(summary.drift, time_scale=self.clock.time_scale)
        return dataclasses.replace(summary, drift=drift)


def _stopped(
    request: PlannedRequest, scheduled_s: float, sent_s: float | None = None
) -> RequestResult:
    """The record of a request the run's time limit cut off. `sent_s` is when it went out; a
    request still waiting for a free slot (max_concurrency) never did, and is counted as sent
    at the stop: either way the load generator's lag behind its schedule stays in the record."""
    stopped_s = time.perf_counter()
    return RequestResult(
        index=request.index,
        scheduled_s=scheduled_s,
        sent_s=stopped_s if sent_s is None else sent_s,
        done_s=stopped_s,
        ok=False,
        error_type="TimeLimitExceeded",
        error="stopped at the run's time limit"
        + ("" if sent_s is not None else " before a slot was free to send it"),
        prompt_tokens=request.prompt_tokens,
    )


class _Tracker:
    """Keeps every record of a run, and counts requests in flight (sampled on a clock, so that
    Little's law can be checked against an independent measurement)."""

    def __init__(self, on_done: Callable[[RequestResult], None] | None) -> None:
        self.in_flight = 0
        self.samples: list[int] = []
        self.records: list[RequestResult] = []
        self.on_done = on_done
        self.started_s = time.perf_counter()

    async def sample_every(self, interval_s: float) -> None:
        while True:
            self.samples.append(self.in_flight)
            await asyncio.sleep(interval_s)  # a sampling clock, not a wait for something

    async def send(self, send: Send, request: PlannedRequest, scheduled_s: float) -> None:
        self.in_flight += 1
        sent_s = time.perf_counter()
        try:
            record = await send(request, scheduled_s)
        except asyncio.CancelledError:  # the run hit its time limit: still a record, an error
            self.records.append(_stopped(request, scheduled_s, sent_s))
            raise
        finally:
            self.in_flight -= 1
        self.records.append(record)
        if self.on_done is not None:
            self.on_done(record)

    def result(self) -> LoadRun:
        records = sorted(self.records, key=lambda record: record.index)
        return LoadRun(records, self.started_s, time.perf_counter(), self.samples)


async def run_open_loop(
    send: Send,
    planned: list[PlannedRequest],
    *,
    request_rate: float,
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    seed: int = 0,
    time_limit_s: float = 600.0,
    on_done: Callable[[RequestResult], None] | None = None,
) -> LoadRun:
    """Requests arrive at `request_rate`/s (inf: all at once) with gamma-distributed gaps:
    burstiness 1 is Poisson, lower is burstier. `max_concurrency` caps requests in flight."""
    gaps = arrival_gaps(request_rate, burstiness=burstiness, seed=seed)
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    tracker = _Tracker(on_done)

    async def one(request: PlannedRequest, scheduled_s: float) -> None:
        if limit is None:
            await tracker.send(send, request, scheduled_s)
            return
        try:
            await limit.acquire()
        except asyncio.CancelledError:  # cut off while waiting for a slot: a record all the same
            tracker.records.append(_stopped(request, scheduled_s))
            raise
        try:
            await tracker.send(send, request, scheduled_s)
        finally:
            limit.release()

    started = tracker.started_s
    sampler = asyncio.ensure_future(tracker.sample_every(0.01))
    tasks: list[asyncio.Task[None]] = []
    due_s = started
    try:
        for request in planned:
            if time.perf_counter() - started > time_limit_s:
                break
            await asyncio.sleep(max(0.0, due_s - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(request, due_s)))
            if math.isfinite(request_rate):
                due_s += next(gaps)
        remaining_s = max(0.0, time_limit_s - (time.perf_counter() - started))
        await asyncio.wait(tasks, timeout=remaining_s) if tasks else None
    finally:
        for task in tasks:
            task.cancel()  # past the time limit: stop, do not hang
        sampler.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
    return tracker.result()


async def run_closed_loop(
    send: Send,
    planned: list[PlannedRequest],
    *,
    users: int,
    think_time_s: float = 0.0,
    time_limit_s: float = 600.0,
    on_done: Callable[[RequestResult], None] | None = None,
) -> LoadRun:
    """`users` callers, each sending its next request only after its answer (and a think)."""
    queue = list(reversed(planned))
    tracker = _Tracker(on_done)

    async def user() -> None:
        while queue and time.perf_counter() - tracker.started_s < time_limit_s:
            await tracker.send(send, queue.pop(), time.perf_counter())
            if think_time_s:
                await asyncio.sleep(think_time_s)  # the user reads before asking again

    sampler = asyncio.ensure_future(tracker.sample_every(0.01))
    workers = [asyncio.ensure_future(user()) for _ in range(users)]
    try:
        await asyncio.wait(workers, timeout=time_limit_s)
    finally:
        for worker in [*workers, sampler]:
            worker.cancel()
        await asyncio.gather(*workers, sampler, return_exceptions=True)
    return tracker.result()


async def run_load(
    base_url: str,
    workload: Workload,
    *,
    mode: str = "async",
    request_rate: float | None = None,
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    users: int | None = None,
    think_time_s: float = 0.0,
    time_limit_s: float = 600.0,
    api_key: str | None = None,
    model: str | None = None,
    on_done: Callable[[RequestResult], None] | None = None,
    clock: ModelClock | None = None,
) -> LoadRun:
    """Run `workload` against `base_url`: closed loop if `users` is given, else open loop at
    `request_rate` (None: all at once). `mode`: "async", "stream", "sync", or "jobs" (then
    `base_url` is a job server's: each request is submitted, and its result long-polled).

    With a `clock`, `request_rate` is per model second and `think_time_s` in model seconds,
    and the run (with each record `on_done` sees) comes back in model time. `time_limit_s`
    stays wall seconds: it is a safety net against a run that would never end."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if clock is not None:
        run = await run_load(
            base_url,
            workload,
            mode=mode,
            request_rate=None if request_rate is None else clock.wall_rate(request_rate),
            burstiness=burstiness,
            max_concurrency=max_concurrency,
            users=users,
            think_time_s=clock.wall_s(think_time_s),
            time_limit_s=time_limit_s,
            api_key=api_key,
            model=model,
            on_done=None if on_done is None else lambda record: on_done(clock.timing(record)),
        )
        return run.in_model_time(clock)
    planned = workload.requests()
    concurrency = min(len(planned), users or max_concurrency or len(planned)) or 1
    # One client, a connection per request in flight (its pool queues past 1,000; see
    # wire/_http1.py for why httpx's own pool could not be used this way).
    connections = min(concurrency, 1000)
    first = AsyncClient(base_url, api_key=api_key, model=model, max_connections=connections)
    try:  # once, not once per connection; and within the run's time limit like all else
        model = await asyncio.wait_for(first.get_model(), time_limit_s)
    except BaseException:
        await first.aclose()
        raise
    async with AsyncExitStack() as resources:  # whatever this mode opened is closed at the end
        resources.push_async_callback(first.aclose)
        if mode == "sync":
            client = resources.enter_context(Client(base_url, api_key=api_key, model=model))
            threads = ThreadPoolExecutor(
                max_workers=min(concurrency, 256), thread_name_prefix="sync"
            )
            resources.callback(threads.shutdown, wait=False, cancel_futures=True)
            send = sync_sender(client, threads)
        elif mode == "jobs":
            job_client = AsyncJobClient(base_url, api_key=api_key, max_connections=connections)
            resources.push_async_callback(job_client.aclose)
            send = jobs_sender([job_client], model=model)
        else:
            send = async_sender([first], stream=mode == "stream")
        if users is not None:
            return await run_closed_loop(
                send,
                planned,
                users=users,
                think_time_s=think_time_s,
                time_limit_s=time_limit_s,
                on_done=on_done,
            )
        return await run_open_loop(
            send,
            planned,
            request_rate=request_rate or math.inf,
            burstiness=burstiness,
            max_concurrency=max_concurrency,
            seed=workload.seed,
            time_limit_s=time_limit_s,
            on_done=on_done,
        )

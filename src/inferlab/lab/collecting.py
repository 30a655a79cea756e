"""What lesson 02 measures about collecting a job's result: polling at an interval, one long-poll,
Server-Sent Events on /v1/jobs/{id}/events, the acknowledgement's latency, and one job's trace
(its queue and worker spans, with the engine's own span inside the attempt that answered).

    seen = await collect(job_url, "poll", job_ids, interval_s=0.1)
    seen.requests, seen.extra_latency_p50_s

"Extra latency" is how long after the job finished (the server's `finished_at`) the client knew:
both clocks are this machine's `time.time()`, the one clock two processes share. Webhooks are
measured in the notebook, which runs the receiver.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..engine.timing import EngineTiming

FINISHED = {"succeeded", "failed", "cancelled"}


@dataclass
class Collected:
    """How one way of collecting did on a set of jobs."""

    way: str
    requests: int = 0  # HTTP requests the clients sent to learn the results
    extra_latency_s: list[float] = field(default_factory=list)

    @property
    def extra_latency_p50_s(self) -> float:
        return statistics.median(self.extra_latency_s)


async def _poll(http: httpx.AsyncClient, job_url: str, interval_s: float, seen: Collected) -> None:
    while True:
        seen.requests += 1
        job = (await http.get(job_url)).json()
        if job["status"] in FINISHED:
            seen.extra_latency_s.append(time.time() - job["finished_at"])
            return
        await asyncio.sleep(interval_s)  # the interval is the method: this sleep is the point


async def _long_poll(http: httpx.AsyncClient, job_url: str, seen: Collected) -> None:
    while True:  # the server holds each request up to wait_s; usually one is enough
        seen.requests += 1
        job = (await http.get(job_url, params={"wait_s": 30})).json()
        if job["status"] in FINISHED:
            seen.extra_latency_s.append(time.time() - job["finished_at"])
            return


async def _events(http: httpx.AsyncClient, job_url: str, seen: Collected) -> None:
    seen.requests += 1
    async for job in job_events(http, job_url):
        if job["status"] in FINISHED:
            seen.extra_latency_s.append(time.time() - job["finished_at"])
            return


async def job_events(http: httpx.AsyncClient, job_url: str) -> Any:
    """Yield the job (a dict) at each change, from its Server-Sent Events, until it finishes."""
    async with http.stream("GET", f"{job_url}/events", timeout=None) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                job = json.loads(line[len("data:") :])
                yield job
                if job["status"] in FINISHED:
                    return


async def collect(
    base_url: str, way: str, job_ids: list[str], *, interval_s: float = 0.0
) -> Collected:
    """Learn each job's result by `way` ('poll', 'long-poll' or 'events'), all jobs at once."""
    seen = Collected(way if way != "poll" else f"poll every {interval_s * 1000:.0f} ms")
    async with httpx.AsyncClient(timeout=60) as http:

        def follow(job_id: str) -> Any:
            job_url = f"{base_url.rstrip('/')}/jobs/{job_id}"
            if way == "poll":
                return _poll(http, job_url, interval_s, seen)
            if way == "long-poll":
                return _long_poll(http, job_url, seen)
            if way == "events":
                return _events(http, job_url, seen)
            raise ValueError(f"way must be 'poll', 'long-poll' or 'events', got {way!r}")

        await asyncio.gather(*(follow(job_id) for job_id in job_ids))
    return seen


async def ack_latencies_s(base_url: str, bodies: list[dict[str, Any]]) -> list[float]:
    """Submit every body at once; return each acknowledgement's latency (perf_counter)."""
    limits = httpx.Limits(max_connections=len(bodies))  # a burst: no queue in the client's pool
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def submit(body: dict[str, Any]) -> float:
            started = time.perf_counter()
            response = await http.post(f"{base_url.rstrip('/')}/jobs", json=body)
            response.raise_for_status()
            return time.perf_counter() - started

        return list(await asyncio.gather(*(submit(body) for body in bodies)))


# ---------------------------------------------------------------------------------------------
# One job, traced

Span = tuple[str, float, float]  # (label, start, end): seconds on this machine's wall clock


def job_trace(states: list[tuple[float, dict[str, Any]]]) -> list[Span]:
    """The spans of one job, from the changes its events showed and when each was seen:
    `queued` lasts until a worker takes it, `running` until it is answered or sent back to the
    queue; the first span starts at the job's `created_at`. The answering attempt's result
    carries the engine's own account (`engine_timing`, in simulated seconds): it becomes two
    spans, to the first token and the decode, converted to wall seconds with the engine's
    time_scale.

    subtle: the engine reports durations, not moments (its clock is simulated), so its spans
    are placed to end at the job's `finished_at`, when the worker recorded the answer. The
    hand-off back (HTTP, splitting the batch, the store's write) is then drawn inside the
    engine's span; what separates the worker's start from the engine's is the way out (the
    batcher's wait for a batch, the request to the model server). The engine's own queue, a
    wait for its next step, is inside its first span, with the prefill.

    A job that ran twice: queued, running (a 500), queued again (the backoff), running, done ->
    queue (attempt 1), worker (attempt 1), queue (attempt 2), worker (attempt 2),
    engine: to first token, engine: decode.
    """
    spans: list[Span] = []
    for (seen_at, job), (next_at, _) in zip(states, states[1:], strict=False):  # all but the last
        stage = {"queued": "queue", "running": "worker"}.get(job["status"], job["status"])
        attempt = job["attempts"] + (job["status"] == "queued")  # queued for the next attempt
        spans.append((f"{stage} (attempt {attempt})", seen_at, next_at))
    if spans:
        label, _, end = spans[0]
        spans[0] = (label, states[0][1]["created_at"], end)  # from the submission itself
    final = states[-1][1] if states else {}
    engine = EngineTiming.from_json((final.get("result") or {}).get(EngineTiming.WIRE_NAME))
    if engine is not None and final.get("finished_at") is not None:
        end = float(final["finished_at"])
        start = end - engine.e2e_latency_s * engine.time_scale
        first_token = start + engine.ttft_s * engine.time_scale
        spans.append(("engine: to first token", start, first_token))
        spans.append(("engine: decode", first_token, end))
    return spans

"""Senders: how each mode sends one request, turning a planned request into a RequestResult.

    send = async_sender(clients, stream=True)
    record = await send(planned_request, scheduled_s)   # never raises: errors are recorded

One per mode: asynchronous (optionally streamed), synchronous on a thread pool, and through a
job API. The load generator (loadgen.py) decides *when* to call them; these decide *how*.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ..jobs.client import AsyncJobClient
from ..wire.client import AsyncClient, Client, Completion
from .metrics import RequestResult
from .workloads import PlannedRequest

Send = Callable[[PlannedRequest, float], Awaitable[RequestResult]]
MODES = ("async", "stream", "sync", "jobs")


def _record(
    planned: PlannedRequest, scheduled_s: float, sent_s: float, answer: Completion | BaseException
) -> RequestResult:
    if isinstance(answer, BaseException):  # the one place broad errors are caught: the boundary
        return RequestResult(
            index=planned.index,
            scheduled_s=scheduled_s,
            sent_s=sent_s,
            done_s=time.perf_counter(),
            ok=False,
            error_type=type(answer).__name__,
            error=str(answer)[:300],
            prompt_tokens=planned.prompt_tokens,
        )
    timing = answer.timing
    return RequestResult(
        index=planned.index,
        scheduled_s=scheduled_s,
        sent_s=timing.sent_s,
        done_s=timing.done_s,
        first_token_s=timing.first_token_s,
        engine=timing.engine,
        token_times_s=list(timing.token_times_s),
        output_tokens=timing.output_tokens,
        prompt_tokens=answer.prompt_tokens or planned.prompt_tokens,
    )


def async_sender(clients: list[AsyncClient], *, stream: bool, **params: Any) -> Send:
    """Send through AsyncClients, taken in turn (one is enough: its pool grows to the
    requests in flight)."""

    async def send(planned: PlannedRequest, scheduled_s: float) -> RequestResult:
        client = clients[planned.index % len(clients)]
        sent_s = time.perf_counter()
        try:
            answer: Completion | BaseException = await client.complete(
                planned.prompt,
                max_tokens=planned.max_tokens,
                stream=stream,
                ignore_eos=True,
                **params,
            )
        except Exception as exc:
            answer = exc
        return _record(planned, scheduled_s, sent_s, answer)

    return send


def sync_sender(client: Client, threads: ThreadPoolExecutor, **params: Any) -> Send:
    """Send with the blocking Client, each request holding a thread until its answer, as a
    synchronous web app would: concurrency is capped by the number of threads."""

    async def send(planned: PlannedRequest, scheduled_s: float) -> RequestResult:
        sent_s = time.perf_counter()
        call = partial(
            client.complete,
            planned.prompt,
            max_tokens=planned.max_tokens,
            ignore_eos=True,
            **params,
        )
        try:
            answer: Completion | BaseException = await asyncio.get_running_loop().run_in_executor(
                threads, call
            )
        except Exception as exc:
            answer = exc
        return _record(planned, scheduled_s, sent_s, answer)

    return send


def jobs_sender(clients: list[AsyncJobClient], **params: Any) -> Send:
    """Submit each request as a job, then long-poll for its result: `acked_s` is when the
    acknowledgement came, `done_s` when the finished job was seen."""

    async def send(planned: PlannedRequest, scheduled_s: float) -> RequestResult:
        client = clients[planned.index % len(clients)]
        sent_s = time.perf_counter()
        try:
            job = await client.submit(
                planned.prompt, max_tokens=planned.max_tokens, ignore_eos=True, **params
            )
            acked_s = time.perf_counter()
            result = await client.result(job.id)
        except Exception as exc:
            return _record(planned, scheduled_s, sent_s, exc)
        usage = result.get("usage") or {}
        return RequestResult(
            index=planned.index,
            scheduled_s=scheduled_s,
            sent_s=sent_s,
            done_s=time.perf_counter(),
            prompt_tokens=usage.get("prompt_tokens") or planned.prompt_tokens,
            output_tokens=usage.get("completion_tokens") or 0,
            acked_s=acked_s,
        )

    return send

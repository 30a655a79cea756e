"""The batching proxy: an OpenAI-compatible front that batches many callers into one upstream call.

    inferlab proxy --upstream http://127.0.0.1:8080/v1 --port 9000 --max-batch-size 16

Completions whose options match (model, max_tokens, temperature, stop, n, seed, stream, ...) share
a batch; each batch is one upstream request with a list `prompt`, split back by choice index
(see `_proxy_upstream.py`). Chat completions cannot be listed in one request, so they go one by
one, with the same queue, deadlines and errors. Every caller gets exactly one answer:

    its completion          200
    queue full              429, with Retry-After
    upstream failed         502, with the upstream's message
    deadline passed         504
    its own bad request     4xx, from the upstream or from our own checks

The queue is bounded by what the upstream can finish within `request_timeout_s`, measured as
the proxy runs (see `_capacity.py`): past that, a 429 at once beats a 504 later. An explicit
`max_queue_size` replaces the measured bound with a fixed one.
It does not pass WebSocket streams through: a batch is one upstream HTTP request, and a socket
carries many requests that start and stop at will. GET /v1/ws closes with 1008 and says so.

Settings change while it runs: `PUT /admin/batching` with JSON, or `proxy.configure(...)`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..batching.batcher import MicroBatcher
from ..batching.guarantee import retry_after_s
from ..errors import (
    BatchFailedError,
    OpenAIHTTPError,
    OverloadedError,
    RequestTimeoutError,
    UpstreamError,
)
from ..serve._http import (
    Lifecycle,
    error_body,
    relay,
    retry_after_header,
    service_app,
    service_dependency,
)
from ..serve._openapi import json_or_stream
from ..serve.schemas import ProxyChatRequest, ProxyCompletionRequest
from ..serve.websocket import refuse_websockets
from ..wire.upstream import Call, Reply, Upstream, batch_key, in_stream_error
from ._capacity import QueueBound
from .settings import LIVE_KNOBS, ProxySettings


class BatchingProxy(Lifecycle):
    """The proxy service: its upstream, its two batchers (completions are batched into lists
    of prompts; chats are forwarded one by one through the same queue and deadlines), its
    measured queue bound, and its typed settings.

        proxy = BatchingProxy(ProxySettings(upstream="http://127.0.0.1:8080/v1"))
        proxy.app                                # the FastAPI app uvicorn serves
        proxy.configure(max_batch_size=16)       # while it runs; checked whole first
    """

    def __init__(self, settings: ProxySettings) -> None:
        super().__init__()
        self.settings = settings
        self.upstream = Upstream(
            settings.upstream, api_key=settings.upstream_api_key, list_prompts=settings.list_prompts
        )
        batching = settings.batching
        # No max_queue_size: measure (one bound per batcher, since chats and completions drain
        # at their own rates); the batcher's own bound stays as the ceiling.
        self.measure_queue_bound = settings.max_queue_size is None
        self.completions: MicroBatcher[Call, Reply] = MicroBatcher(
            self.upstream.complete, group_key=batch_key, **batching
        )
        self.chats: MicroBatcher[tuple[Any, asyncio.Queue[str | None]], Reply] = MicroBatcher(
            self._forward_chats, **{**batching, "max_batch_size": 64}
        )
        self.queue_bounds = {
            id(batcher): QueueBound(
                request_timeout_s=settings.request_timeout_s,
                floor=min(4 * batcher.settings.max_batch_size, batcher.settings.max_queue_size),
                start=min(256, batcher.settings.max_queue_size),
                ceiling=batcher.settings.max_queue_size,
            )
            for batcher in (self.completions, self.chats)
        }
        registry = CollectorRegistry()
        registry.register(_ProxyCollector(self))
        self.app = service_app(
            "inferlab batching proxy",
            self,
            routers=[router],
            api_key=settings.api_key,
            max_body_bytes=settings.max_body_bytes,
            http_limits=settings.http_limits,
            metrics=lambda: generate_latest(registry),
        )
        refuse_websockets(self.app, NO_WEBSOCKETS)

    @property
    def request_timeout_s(self) -> float:
        return self.settings.request_timeout_s

    async def _close(self) -> None:
        await self.completions.aclose()
        await self.chats.aclose()
        await self.upstream.aclose()

    def admit(self, batcher: MicroBatcher[Any, Reply]) -> None:
        """Raise OverloadedError if `batcher`'s queue is at its measured bound."""
        if not self.measure_queue_bound:
            return  # the batcher's fixed max_queue_size decides
        bound = self.queue_bounds[id(batcher)]
        bound.request_timeout_s = self.request_timeout_s
        now_s = asyncio.get_running_loop().time()
        bound.observe(now_s, completed=batcher.stats.completed, queued=batcher.pending)
        if batcher.pending >= bound.limit:
            batcher.stats.rejected += 1
            raise OverloadedError(
                f"the queue is full ({batcher.pending} requests waiting: as many as the "
                f"upstream is measured to finish within the {self.request_timeout_s:g} s "
                "request timeout)",
                retry_after_s=retry_after_s(batcher.pending, batcher.settings, batcher.stats),
            )

    async def _forward_chats(
        self, items: list[tuple[Any, asyncio.Queue[str | None]]]
    ) -> list[Reply]:
        replies = await asyncio.gather(
            *(self.upstream.forward("/chat/completions", body, events) for body, events in items),
            return_exceptions=True,
        )
        return [r if isinstance(r, Reply) else _reply_for(r) for r in replies]

    def live_settings(self) -> dict[str, Any]:
        """What may change while it runs, as `GET /admin/batching` shows it."""
        settings = self.completions.settings
        return {
            "max_batch_size": settings.max_batch_size,
            "batch_wait_timeout_s": settings.batch_wait_timeout_s,
            "max_concurrent_batches": settings.max_concurrent_batches,
            "max_queue_size": self.queue_bounds[id(self.completions)].limit
            if self.measure_queue_bound
            else settings.max_queue_size,
            "max_queue_size_measured": self.measure_queue_bound,
            "dispatch_when_idle": settings.dispatch_when_idle,
            "request_timeout_s": self.request_timeout_s,
        }

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change batching settings from any thread; a bad or unknown one raises ValueError or
        TypeError before anything changes. `max_queue_size=None` goes back to the measured
        bound. Returns the live settings."""
        unknown = sorted(set(changes) - set(LIVE_KNOBS))
        if unknown:
            raise TypeError(f"{unknown[0]!r} cannot change while serving; can: {LIVE_KNOBS}")
        changed = self.settings.replace(**changes)  # checks types and bounds, all at once
        batching = {k: v for k, v in changes.items() if k in changed.batching}
        if "max_queue_size" in changes and changes["max_queue_size"] is None:
            batching["max_queue_size"] = self.queue_bounds[id(self.completions)].ceiling
        self.completions.configure(**batching)
        self.settings = changed
        self.measure_queue_bound = changed.max_queue_size is None
        return self.live_settings()


def batcher_stats(batcher: MicroBatcher[Any, Any]) -> dict[str, Any]:
    """A batcher's counters as JSON: batches by size and by flush reason, outcomes, queue."""
    stats = batcher.stats
    return {
        "submitted": stats.submitted,
        "completed": stats.completed,
        "failed": stats.failed,
        "rejected": stats.rejected,
        "expired": stats.expired,
        "cancelled": stats.cancelled,
        "batches": stats.batches,
        "batch_sizes": {str(size): n for size, n in sorted(stats.batch_sizes.items())},
        "flush_reasons": dict(stats.flush_reasons),
        "pending": batcher.pending,
        "in_flight": batcher.in_flight,
    }


def _reply_for(exc: BaseException) -> Reply:
    """The HTTP answer for an error that reached a caller instead of a result."""
    if isinstance(exc, OverloadedError):
        return Reply(
            429, error_body(str(exc), 429), {"retry-after": retry_after_header(exc.retry_after_s)}
        )
    if isinstance(exc, RequestTimeoutError):
        return Reply(504, error_body(f"the proxy gave up waiting: {exc}", 504))
    if isinstance(exc, UpstreamError):
        return Reply(exc.status, error_body(str(exc), exc.status))
    if isinstance(exc, BatchFailedError):
        return Reply(502, error_body(str(exc), 502))
    return Reply(502, error_body(f"the proxy failed: {exc!r}", 502))


def _json(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, reply.status, reply.headers)


async def _cancel_on_disconnect(request: Request, future: asyncio.Future[Reply]) -> None:
    """A caller that hangs up stops waiting: cancel its future, so the batcher drops it (never
    sent if still queued). uvicorn would otherwise let the handler run on, unheard."""
    while not future.done():
        message = await request.receive()  # the body is read; what comes next is a disconnect
        if message["type"] == "http.disconnect":
            future.cancel()
            return


async def _answer(
    future: asyncio.Future[Reply],
    events: asyncio.Queue[str | None],
    stream: bool,
    request: Request,
) -> Response:
    """Wait for the caller's reply; a stream starts only once its first chunk exists, so
    errors before that still get their proper status code."""
    if not stream:
        watcher = asyncio.ensure_future(_cancel_on_disconnect(request, future))
        try:
            return _json(await future)
        except asyncio.CancelledError:
            if not future.cancelled():
                raise  # we ourselves are being cancelled (shutdown)
            # The caller hung up; nobody will read this, but the handler must still end.
            return _json(Reply(400, error_body("the client closed the request", 400)))
        except Exception as exc:
            return _json(_reply_for(exc))
        finally:
            watcher.cancel()
    first = asyncio.ensure_future(events.get())
    try:
        either: set[asyncio.Future[Any]] = {first, future}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        first.cancel()
        future.cancel()
        raise
    if not first.done():
        first.cancel()
        try:
            reply = future.result()
        except Exception as exc:
            reply = _reply_for(exc)
        return _json(reply if reply.body is not None else _reply_for(BatchFailedError("empty")))
    return StreamingResponse(_relay(first.result(), events, future), media_type="text/event-stream")


async def _relay(
    first: str | None, events: asyncio.Queue[str | None], future: asyncio.Future[Reply]
) -> AsyncIterator[str]:
    try:
        chunk = first
        while chunk is not None:
            yield chunk
            getter = asyncio.ensure_future(events.get())
            either: set[asyncio.Future[Any]] = {getter, future}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                chunk = getter.result()
                continue
            getter.cancel()
            if not events.empty():
                chunk = events.get_nowait()
                continue
            error = future.exception() if not future.cancelled() else None
            if error is not None:  # the upstream broke mid-stream: say so, then end
                yield f"data: {json.dumps(in_stream_error(_reply_for(error)))}\n\n"
                yield "data: [DONE]\n\n"
            chunk = None
    finally:
        future.cancel()  # a caller that hung up: the batcher cancels a batch nobody awaits


router = APIRouter()
_proxy = service_dependency(BatchingProxy)
NO_WEBSOCKETS = "the batching proxy does not pass WebSockets through; stream over SSE here"


@router.post("/v1/completions", responses=json_or_stream("A completion, or its stream"))
async def completions(
    request: ProxyCompletionRequest, raw: Request, proxy: BatchingProxy = _proxy
) -> Response:
    body = request.model_dump(exclude_unset=True)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    call = Call(body, request.prompts, request.n, request.stream, include_usage)
    return await _submit(proxy, proxy.completions, call, call.events, request.stream, raw)


@router.post("/v1/chat/completions", responses=json_or_stream("A chat completion, or its stream"))
async def chat_completions(
    request: ProxyChatRequest, raw: Request, proxy: BatchingProxy = _proxy
) -> Response:
    events: asyncio.Queue[str | None] = asyncio.Queue()
    body = request.model_dump(exclude_unset=True)
    return await _submit(proxy, proxy.chats, (body, events), events, request.stream, raw)


async def _submit(
    proxy: BatchingProxy,
    batcher: MicroBatcher[Any, Reply],
    item: Any,
    events: asyncio.Queue[str | None],
    stream: bool,
    raw: Request,
) -> Response:
    try:
        proxy.admit(batcher)
        future = batcher.submit_nowait(item, timeout_s=proxy.request_timeout_s)
    except OverloadedError as exc:
        return _json(_reply_for(exc))
    return await _answer(future, events, stream, raw)


@router.get("/v1/models")
async def models(proxy: BatchingProxy = _proxy) -> Response:
    upstream = proxy.upstream
    return await relay(upstream.http.get(upstream.base_url + "/models"))


@router.get("/admin/batching")
async def get_settings(proxy: BatchingProxy = _proxy) -> dict[str, Any]:
    return proxy.live_settings()


@router.put("/admin/batching")
async def put_settings(request: Request, proxy: BatchingProxy = _proxy) -> dict[str, Any]:
    try:
        return proxy.configure(**await request.json())
    except (ValueError, TypeError) as exc:
        raise OpenAIHTTPError(400, str(exc)) from exc


@router.get("/admin/stats")
async def get_stats(proxy: BatchingProxy = _proxy) -> dict[str, Any]:
    """What the completions batcher has done, for a dashboard or a notebook."""
    return batcher_stats(proxy.completions)


def create_proxy_app(upstream_url: str, **settings: Any) -> FastAPI:
    """The app of a new `BatchingProxy` in front of `upstream_url` (an OpenAI base URL ending
    in /v1); `settings` are `ProxySettings` fields, and an unknown one raises TypeError.
    Without max_queue_size the queue bound is measured: what the upstream finishes in time."""
    return BatchingProxy(ProxySettings.from_dict({"upstream": upstream_url, **settings})).app


class _ProxyCollector(Collector):
    def __init__(self, proxy: BatchingProxy):
        self.proxy = proxy

    def collect(self) -> list[Metric]:
        batcher = self.proxy.completions
        stats = batcher.stats
        queue = GaugeMetricFamily(
            "inferlab_proxy:queue_depth", "Requests waiting for a batch", batcher.pending
        )
        in_flight = GaugeMetricFamily(
            "inferlab_proxy:batches_in_flight", "Upstream calls under way", batcher.in_flight
        )
        flushes = CounterMetricFamily(
            "inferlab_proxy:batches", "Batches sent, by flush reason", labels=["reason"]
        )
        for reason, count in stats.flush_reasons.items():
            flushes.add_metric([reason], count)
        items = CounterMetricFamily(
            "inferlab_proxy:batched_requests",
            "Requests sent in batches",
            value=sum(size * n for size, n in stats.batch_sizes.items()),
        )
        outcomes = CounterMetricFamily(
            "inferlab_proxy:requests", "Requests by outcome", labels=["outcome"]
        )
        for outcome in ("completed", "failed", "rejected", "expired", "cancelled"):
            outcomes.add_metric([outcome], getattr(stats, outcome))
        resends = CounterMetricFamily(
            "inferlab_proxy:upstream_resends",
            "Upstream requests sent again: the server dropped them before answering a byte",
            value=self.proxy.upstream.resends,
        )
        return [queue, in_flight, flushes, items, outcomes, resends]

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

It does not pass WebSocket streams through: a batch is one upstream HTTP request, and a socket
carries many requests that start and stop at will. GET /v1/ws closes with 1008 and says so.

Settings change while it runs: `PUT /admin/batching` with JSON, or `proxy.configure(...)`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..batching.batcher import MicroBatcher
from ..errors import (
    BatchFailedError,
    OpenAIHTTPError,
    OverloadedError,
    RequestTimeoutError,
    UpstreamError,
)
from ..serve._http import (
    BodySizeLimit,
    api_key_dependency,
    error_body,
    install_error_handlers,
    relay,
    retry_after_header,
)
from ..serve.schemas import ProxyChatRequest, ProxyCompletionRequest
from ..serve.websocket import refuse_websockets
from ..wire.upstream import Call, Reply, Upstream, batch_key


class BatchingProxy:
    """The proxy's state: its upstream and its two batchers, with thread-safe settings."""

    def __init__(self, upstream: Upstream, *, request_timeout_s: float = 300.0, **batching: Any):
        self.upstream = upstream
        self.request_timeout_s = request_timeout_s
        self.completions: MicroBatcher[Call, Reply] = MicroBatcher(
            upstream.complete, group_key=batch_key, **batching
        )
        self.chats: MicroBatcher[tuple[Any, asyncio.Queue[str | None]], Reply] = MicroBatcher(
            self._forward_chats, **{**batching, "max_batch_size": 64}
        )

    async def _forward_chats(self, items: list[tuple[Any, asyncio.Queue[str | None]]]) -> list:
        replies = await asyncio.gather(
            *(self.upstream.forward("/chat/completions", body, events) for body, events in items),
            return_exceptions=True,
        )
        return [r if isinstance(r, Reply) else _reply_for(r) for r in replies]

    @property
    def settings(self) -> dict[str, Any]:
        settings = self.completions.settings
        return {
            "max_batch_size": settings.max_batch_size,
            "batch_wait_timeout_s": settings.batch_wait_timeout_s,
            "max_concurrent_batches": settings.max_concurrent_batches,
            "max_queue_size": settings.max_queue_size,
            "dispatch_when_idle": settings.dispatch_when_idle,
            "request_timeout_s": self.request_timeout_s,
        }

    def close_from_thread(self, timeout_s: float = 10.0) -> None:
        """From another thread, answer everything queued or in flight (with errors) before the
        server stops: uvicorn drains connections before the app's own shutdown, so a request
        still waiting in a batcher then would only be cancelled, unanswered."""
        for batcher in (self.completions, self.chats):
            batcher.close_from_thread(drain=False, timeout_s=timeout_s)

    def configure(self, **changes: Any) -> None:
        """Change batching settings from any thread; raises ValueError/TypeError if invalid."""
        timeout = changes.pop("request_timeout_s", self.request_timeout_s)
        if not timeout > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {timeout}")
        self.completions.configure(**changes)
        self.request_timeout_s = timeout


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
        await asyncio.wait({first, future}, return_when=asyncio.FIRST_COMPLETED)
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
            await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                chunk = getter.result()
                continue
            getter.cancel()
            if not events.empty():
                chunk = events.get_nowait()
                continue
            error = future.exception() if not future.cancelled() else None
            if error is not None:  # the upstream broke mid-stream: say so, then end
                yield f"data: {json.dumps(_reply_for(error).body)}\n\n"
                yield "data: [DONE]\n\n"
            chunk = None
    finally:
        future.cancel()  # a caller that hung up: the batcher cancels a batch nobody awaits


NO_WEBSOCKETS = "the batching proxy does not pass WebSockets through; stream over SSE here"


def create_proxy_app(
    upstream_url: str,
    *,
    upstream_api_key: str | None = None,
    list_prompts: bool = True,
    api_key: str | None = None,
    request_timeout_s: float = 300.0,
    **batching: Any,
) -> FastAPI:
    """The proxy app in front of `upstream_url` (an OpenAI base URL ending in /v1).

    `batching` takes MicroBatcher's settings: max_batch_size, batch_wait_timeout_s,
    max_concurrent_batches, max_queue_size, dispatch_when_idle.
    """
    upstream = Upstream(upstream_url, api_key=upstream_api_key, list_prompts=list_prompts)
    proxy = BatchingProxy(upstream, request_timeout_s=request_timeout_s, **batching)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await proxy.completions.aclose()
        await proxy.chats.aclose()
        await upstream.aclose()

    app = FastAPI(title="inferlab batching proxy", lifespan=lifespan)
    app.state.proxy = proxy
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=4 * 1024 * 1024)
    guard = [Depends(api_key_dependency(api_key))]
    v1 = APIRouter(prefix="/v1", dependencies=guard)

    @v1.post("/completions")
    async def completions(request: ProxyCompletionRequest, raw: Request) -> Response:
        body = request.model_dump(exclude_unset=True)
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        call = Call(body, request.prompts, request.n, request.stream, include_usage)
        return await _submit(proxy.completions, call, call.events, request.stream, raw)

    @v1.post("/chat/completions")
    async def chat_completions(request: ProxyChatRequest, raw: Request) -> Response:
        events: asyncio.Queue[str | None] = asyncio.Queue()
        body = request.model_dump(exclude_unset=True)
        return await _submit(proxy.chats, (body, events), events, request.stream, raw)

    async def _submit(
        batcher: MicroBatcher[Any, Reply],
        item: Any,
        events: asyncio.Queue[str | None],
        stream: bool,
        raw: Request,
    ) -> Response:
        try:
            future = batcher.submit_nowait(item, timeout_s=proxy.request_timeout_s)
        except OverloadedError as exc:
            return _json(_reply_for(exc))
        return await _answer(future, events, stream, raw)

    @v1.get("/models")
    async def models() -> Response:
        return await relay(upstream.http.get(upstream.base_url + "/models"))

    app.include_router(v1)
    refuse_websockets(app, NO_WEBSOCKETS)

    @app.get("/admin/batching", dependencies=guard)
    async def get_settings() -> dict[str, Any]:
        return proxy.settings

    @app.put("/admin/batching", dependencies=guard)
    async def put_settings(request: Request) -> dict[str, Any]:
        try:
            changes = await request.json()
            proxy.configure(**changes)
        except (ValueError, TypeError) as exc:
            raise OpenAIHTTPError(400, str(exc)) from exc
        return proxy.settings

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    registry = CollectorRegistry()
    registry.register(_ProxyCollector(proxy))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return app


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
        return [queue, in_flight, flushes, items, outcomes]

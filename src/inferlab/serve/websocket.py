"""Streaming over one WebSocket: many requests on one connection, each cancellable mid-answer.

    ws://127.0.0.1:8000/v1/ws      (the client: `wire.websocket.WebSocketClient`)

The client sends JSON text frames; every frame the server sends back names its request id:

    -> {"type": "completions", "id": "r1", "body": {"prompt": "Hi", "max_tokens": 8}}
    -> {"type": "chat.completions", "id": "r2", "body": {"messages": [...]}}
    -> {"type": "cancel", "id": "r1"}
    <- {"id": "r1", "type": "chunk", "chunk": <the very chunk SSE would carry>}
    <- {"id": "r1", "type": "done"}                  the answer is complete ([DONE] in SSE)
    <- {"id": "r1", "type": "cancelled", "chunks": 3} the engine stopped generating for it
    <- {"id": "r2", "type": "error", "error": {...}}  it failed, before or during its answer
    <- {"id": null, "type": "error", "status": 400, "error": {"message", "type", ...}}

Each request ends with exactly one of `done`, `cancelled` or `error`: a client can stop reading
for it there. (SSE sends `[DONE]` even after an error event; a frame of its own needs no such
end marker, so none follows the error.)

The bodies are those of POST /v1/completions and /v1/chat/completions (always streamed), and
the chunks are byte for byte what SSE sends: only the framing differs. A bad frame gets an error
frame in OpenAI's error shape and the socket stays open; only a wrong API key closes it (1008).
Left out: binary frames, compression settings, and back-pressure beyond the socket's own.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, aclosing, nullcontext
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from prometheus_client import CollectorRegistry, Gauge
from pydantic import ValidationError

from ..engine.model import SimulatedModel
from ..errors import OpenAIHTTPError
from ._http import error_body
from .metrics import ServerMetrics
from .schemas import ChatCompletionRequest, CompletionRequest, render_chat
from .shapes import CHAT, COMPLETION

# What a request frame names -> how it opens the same event stream the HTTP route would send.
OpenStream = Callable[[str, dict[str, Any]], AsyncGenerator[str, None]]
REQUEST_TYPES = ("completions", "chat.completions")
POLICY_VIOLATION = 1008  # the WebSocket close code for "you may not" (RFC 6455 7.4.1)


def error_frame(request_id: Any, message: str, status: int, **fields: Any) -> dict[str, Any]:
    """An OpenAI error body, tagged with the request it answers (None: the frame itself)."""
    body = error_body(message, status, **fields)
    return {"id": request_id, "type": "error", "status": status, **body}


def describe(exc: Exception) -> tuple[str, int]:
    """(message, status) of what a request raised before or while it streamed."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return (f"{where}: {first.get('msg')}" if where else str(first.get("msg"))), 400
    if isinstance(exc, OpenAIHTTPError):
        return exc.message, exc.status
    return str(exc), 400 if isinstance(exc, ValueError) else 500


# ---------------------------------------------------------------------------------------------
# One connection


class _Connection:
    """The requests in flight on one socket: one task each, and one lock for sending.

    Everything here runs on the server's one event loop, so `tasks` needs no lock; sending
    does, because two answers interleaving their frames is fine but two halves of one frame
    are not, and the ASGI send is not promised to be safe when awaited from two tasks.
    """

    def __init__(self, socket: WebSocket, open_stream: OpenStream, slots: Any, gauges: Gauges):
        self.socket, self.open_stream, self.slots, self.gauges = socket, open_stream, slots, gauges
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled: set[str] = set()
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":"))
        async with self._send_lock:
            await self.socket.send_text(text)

    async def serve(self) -> None:
        """Read frames until the client goes; then stop every request it left running."""
        try:
            while True:
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await self.handle(message.get("text"))
        except WebSocketDisconnect:
            return
        finally:  # a client that hung up: the engine stops generating for all its requests
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def handle(self, text: str | None) -> None:
        """Start, cancel, or refuse with an error frame; never raise (the socket stays up)."""
        try:
            frame = json.loads(text) if text is not None else None
        except ValueError as exc:
            await self.send(error_frame(None, f"the frame is not valid JSON: {exc}", 400))
            return
        if not isinstance(frame, dict):
            await self.send(error_frame(None, "a frame must be a JSON object", 400))
            return
        request_id, kind = frame.get("id"), frame.get("type")
        if not isinstance(request_id, str) or not request_id:
            await self.send(error_frame(request_id, "`id` must be a non-empty string", 400))
        elif kind == "cancel":
            await self.cancel(request_id)
        elif kind not in REQUEST_TYPES:
            message = f"`type` must be one of {[*REQUEST_TYPES, 'cancel']}, got {kind!r}"
            await self.send(error_frame(request_id, message, 400, param="type"))
        elif request_id in self.tasks:
            message = f"request {request_id!r} is still in flight; ids must be unique"
            await self.send(error_frame(request_id, message, 400, param="id"))
        elif not isinstance(frame.get("body"), dict):
            await self.send(error_frame(request_id, "`body` must be a JSON object", 400))
        else:
            task = asyncio.create_task(self.run(request_id, kind, frame["body"]))
            self.tasks[request_id] = task

    async def cancel(self, request_id: str) -> None:
        task = self.tasks.get(request_id)
        if task is None:  # finished already (its `done` may be on the way), or never sent
            message = f"no request {request_id!r} is in flight"
            await self.send(error_frame(request_id, message, 404, code="not_found"))
            return
        self.cancelled.add(request_id)
        task.cancel()

    async def run(self, request_id: str, kind: str, body: dict[str, Any]) -> None:
        """Stream one request's chunks as frames tagged with its id."""
        chunks = 0
        self.gauges.requests.inc()
        try:
            async with self.slots, aclosing(self.open_stream(kind, body)) as events:
                async for event in events:
                    data = event.removeprefix("data: ").rstrip()
                    if data == "[DONE]":
                        await self.send({"id": request_id, "type": "done"})
                    elif data.startswith('{"error"'):  # the engine failed after the start
                        await self.send({"id": request_id, "type": "error", **json.loads(data)})
                        return  # its last frame: the [DONE] that SSE sends next is not relayed
                    else:  # subtle: the chunk's JSON is spliced in as it is, not re-encoded
                        chunks += 1
                        await self.send(
                            f'{{"id":{json.dumps(request_id)},"type":"chunk","chunk":{data}}}'
                        )
        except asyncio.CancelledError:
            if request_id not in self.cancelled:
                raise  # the connection is closing: nobody is left to tell
            await self.send({"id": request_id, "type": "cancelled", "chunks": chunks})
        except Exception as exc:  # refused before the first chunk: a bad body, an unknown model
            message, status = describe(exc)
            await self.send(error_frame(request_id, message, status))
        finally:
            self.gauges.requests.dec()
            self.tasks.pop(request_id, None)
            self.cancelled.discard(request_id)


# ---------------------------------------------------------------------------------------------
# The route


class Gauges:
    """What WebSocket streaming holds on the server, exported beside vLLM's metrics."""

    def __init__(self, registry: CollectorRegistry):
        self.connections = Gauge(
            "inferlab:websocket_connections", "Open WebSocket connections", registry=registry
        )
        self.requests = Gauge(
            "inferlab:websocket_requests_running",
            "Requests streaming over WebSockets",
            registry=registry,
        )


def engine_streams(model: SimulatedModel, metrics: ServerMetrics) -> OpenStream:
    """The event streams of the HTTP routes, for request bodies that arrive in frames."""
    # subtle: app.py imports this module, so its helpers are imported when a server is built.
    from .responder import _plan_choices, _Responder

    async def open_stream(kind: str, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        body = {**body, "stream": True}  # a socket only streams
        if kind == "completions":
            completion = CompletionRequest.model_validate(body)
            check_model(model, completion.model)
            choices = _plan_choices(model, completion.prompts, completion, completion.max_tokens)
            responder = _Responder(model, metrics, COMPLETION, choices, completion, completion.echo)
        else:
            chat = ChatCompletionRequest.model_validate(body)
            check_model(model, chat.model)
            choices = _plan_choices(
                model, [render_chat(chat.messages)], chat, chat.completion_limit
            )
            responder = _Responder(model, metrics, CHAT, choices, chat)
        async for event in responder.events():
            yield event

    return open_stream


def check_model(model: SimulatedModel, requested: str | None) -> None:
    if requested is not None and requested != model.name:
        message = f"The model `{requested}` does not exist. This server serves `{model.name}`."
        raise OpenAIHTTPError(404, message, param="model", code="model_not_found")


def install_websocket(
    app: FastAPI,
    model: SimulatedModel,
    metrics: ServerMetrics,
    *,
    api_key: str | None = None,
    slots: AbstractAsyncContextManager[Any] | None = None,
) -> None:
    """Serve GET /v1/ws (an upgrade to a WebSocket) on `app`, streaming from `model`."""
    gauges = Gauges(metrics.registry)
    open_stream = engine_streams(model, metrics)

    @app.websocket("/v1/ws")
    async def stream_over_websocket(socket: WebSocket) -> None:
        await socket.accept()  # first, so that a refusal can say why (a close reason)
        if api_key is not None:  # the upgrade request's header, as the HTTP routes check it
            given = socket.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, f"Bearer {api_key}".encode()):
                reason = "incorrect or missing API key: send 'Authorization: Bearer <key>'"
                await socket.close(POLICY_VIOLATION, reason)
                return
        gauges.connections.inc()
        try:
            await _Connection(socket, open_stream, slots or nullcontext(), gauges).serve()
        finally:
            gauges.connections.dec()


def refuse_websockets(app: FastAPI, reason: str) -> None:
    """Answer GET /v1/ws on a server that does not stream over WebSockets: accept, then close
    with 1008 and `reason`, so the client reads why instead of a bare 403 on the upgrade."""

    @app.websocket("/v1/ws")
    async def no_websocket(socket: WebSocket) -> None:
        await socket.accept()
        await socket.close(POLICY_VIOLATION, reason)

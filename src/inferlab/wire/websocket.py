"""A timed client for the model server's WebSocket: many streamed requests on one connection.

    async with WebSocketClient(inferlab.base_url()) as ws:
        answer = await ws.complete("The capital of France is", max_tokens=8)
        answer.text, answer.timing.ttft_s, ws.bytes_received

Each call sends one frame tagged with a fresh request id and reads the frames with that id, so
calls may run concurrently (`asyncio.gather`) over the one socket. A call that is cancelled
(the caller hung up) tells the server, and the engine stops generating for it; `cancel(id)`
does the same from outside and the call returns what arrived, its finish reason "cancelled".
The protocol is in `serve/websocket.py`. Only the course's server speaks it: llama-server,
vLLM and Ollama stream over SSE (`client.py`). Compression is off by default so that bytes
counted here are bytes on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from ..errors import ConnectionLostError, ServerUnavailableError
from .client import Completion, Messages, OnText, _Answer, _as_messages, _headers
from .sse import api_error


def websocket_url(base_url: str) -> str:
    """'http://127.0.0.1:8000/v1' -> 'ws://127.0.0.1:8000/v1/ws' (https -> wss)."""
    return base_url.rstrip("/").replace("http", "ws", 1) + "/ws"


def frame_header_bytes(payload_bytes: int) -> int:
    """What RFC 6455 adds to a server's frame: 2 bytes, 4 past 125, 10 past 65,535."""
    return 2 if payload_bytes < 126 else 4 if payload_bytes < 65536 else 10


class WebSocketClient:
    """One WebSocket to the model server; `complete()` and `chat()` as on `AsyncClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        compression: bool = False,
    ):
        self.url = websocket_url(base_url)
        self.model = model
        self.bytes_sent = 0  # frame payloads plus headers, both ways, as they cross the socket
        self.bytes_received = 0
        self.frames_received = 0
        self._api_key, self._compression = api_key, compression
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inboxes: dict[str, asyncio.Queue[dict[str, Any] | Exception]] = {}
        self._ids = itertools.count(1)
        self._cancels: set[asyncio.Task[None]] = set()

    async def connect(self) -> WebSocketClient:
        try:
            self._socket = await connect(
                self.url,
                additional_headers=_headers(self._api_key),
                compression="deflate" if self._compression else None,
                proxy=None,  # loopback courses: never route through an HTTP(S)_PROXY
                max_size=None,
            )
        except (OSError, websockets.exceptions.InvalidHandshake) as exc:
            raise ServerUnavailableError(f"no WebSocket at {self.url}: {exc!r}") from exc
        self._reader = asyncio.create_task(self._read(), name=f"websocket reader {self.url}")
        return self

    async def complete(
        self,
        prompt: str | list[str],
        *,
        request_id: str | None = None,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """Stream a completion over the socket; a list of prompts gives one text each."""
        body = {"prompt": prompt, **params}
        return await self._request("completions", body, request_id, on_text)

    async def chat(
        self,
        messages: str | Messages,
        *,
        request_id: str | None = None,
        on_text: OnText | None = None,
        **params: Any,
    ) -> Completion:
        """Stream a chat completion; a plain string is sent as one user message."""
        body = {"messages": _as_messages(messages), **params}
        return await self._request("chat.completions", body, request_id, on_text)

    async def cancel(self, request_id: str) -> None:
        """Ask the server to stop `request_id`; its call then returns what had arrived."""
        await self._send({"type": "cancel", "id": request_id})

    # -----------------------------------------------------------------------------------------

    async def _request(
        self, kind: str, body: dict[str, Any], request_id: str | None, on_text: OnText | None
    ) -> Completion:
        request_id = request_id or f"r{next(self._ids)}"
        if request_id in self._inboxes:
            raise ValueError(f"request id {request_id!r} is already in flight")
        if self.model is not None:
            body.setdefault("model", self.model)
        body.setdefault("stream_options", {"include_usage": True})
        inbox = self._inboxes[request_id] = asyncio.Queue()
        answer = _Answer(time.perf_counter(), on_text)
        finished = False
        try:
            await self._send({"type": kind, "id": request_id, "body": body})
            while not finished:
                frame = await inbox.get()
                finished = self._take(answer, frame)
            return answer.result(time.perf_counter())
        finally:
            del self._inboxes[request_id]
            if not finished and self._socket is not None:  # the caller gave up: tell the server
                task = asyncio.create_task(self._send({"type": "cancel", "id": request_id}))
                self._cancels.add(task)
                task.add_done_callback(self._cancels.discard)

    @staticmethod
    def _take(answer: _Answer, frame: dict[str, Any] | Exception) -> bool:
        """Add one frame to the answer; True once the request is over."""
        if isinstance(frame, Exception):
            raise frame
        kind = frame.get("type")
        if kind == "chunk":
            answer.add_choices(frame["chunk"], time.perf_counter())
            return False
        if kind == "error":
            raise api_error(frame, status_code=int(frame.get("status") or 500))
        if kind == "cancelled":
            for index in answer.texts:
                answer.finish[index] = answer.finish.get(index) or "cancelled"
        return kind in ("done", "cancelled")

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._socket is None:
            raise RuntimeError("WebSocketClient is not connected: use `async with` or connect()")
        text = json.dumps(frame, separators=(",", ":"))
        # A client's frames are masked: 4 bytes of mask on top of the header (RFC 6455 5.3).
        self.bytes_sent += len(text.encode()) + frame_header_bytes(len(text)) + 4
        try:
            await self._socket.send(text)
        except websockets.exceptions.ConnectionClosed as exc:
            raise ConnectionLostError(f"the WebSocket to {self.url} closed: {exc}") from exc

    async def _read(self) -> None:
        """Route every frame to the call waiting for its id; on close, fail the waiting."""
        assert self._socket is not None
        error: Exception
        try:
            async for text in self._socket:
                size = len(text) if isinstance(text, bytes) else len(text.encode())
                self.bytes_received += size + frame_header_bytes(size)
                self.frames_received += 1
                frame = json.loads(text)
                inbox = self._inboxes.get(frame.get("id"))
                if inbox is not None:  # else: an answer to a call that already gave up
                    inbox.put_nowait(frame)
            error = ConnectionLostError(f"the server closed the WebSocket to {self.url}")
        except websockets.exceptions.ConnectionClosed as exc:
            error = ConnectionLostError(f"the WebSocket to {self.url} broke: {exc}")
        for inbox in self._inboxes.values():
            inbox.put_nowait(error)

    async def aclose(self) -> None:
        if self._socket is not None:
            await asyncio.gather(*self._cancels, return_exceptions=True)
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._socket = self._reader = None

    async def __aenter__(self) -> WebSocketClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

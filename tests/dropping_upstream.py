"""A bare TCP model server whose drops are real ones, for the resend tests (#14 item 6).

It reads a whole request, then either answers it (keep-alive, so connections are reused as a
real server's are) or drops it: `how="close"` closes the socket without a byte of answer
(httpx: "Server disconnected without sending a response"), `how="reset"` resets it (RST, as a
server that crashed or a full listen queue does), `how="half"` sends the head and one byte or
one chunk of the answer first, then closes. The first `drops` completions or chats are dropped;
GET /models says `owned_by: "test"` (an unknown server) and anything else GET is a 404.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

Json = dict[str, Any]


def completion(prompts: list[str]) -> Json:
    return {
        "id": "x",
        "object": "text_completion",
        "model": "fake",
        "choices": [
            {"index": i, "text": f" {p}!", "finish_reason": "length"} for i, p in enumerate(prompts)
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }


def chat() -> Json:
    message = {"role": "assistant", "content": "hi"}
    return {"id": "c", "object": "chat.completion", "model": "fake", "choices": [
        {"index": 0, "message": message, "finish_reason": "stop"}
    ]}  # fmt: skip


class DroppingServer:
    """`async with DroppingServer(drops=1) as base_url:` ... `.requests` counts the POSTs."""

    def __init__(self, drops: int, *, how: str = "close"):
        self.drops, self.how = drops, how
        self.requests = 0  # POSTs received in full, dropped or answered
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []  # closed on exit: keep-alive ones too

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answers one request; False when the connection is to end."""
        head = await reader.readuntil(b"\r\n\r\n")
        method, path = head.split(b" ")[:2]
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = json.loads(await reader.readexactly(length)) if length else {}
        if method == b"GET":
            found = path.endswith(b"/models")
            models = {"data": [{"id": "fake", "owned_by": "test"}]}
            await self._send(writer, 200 if found else 404, models if found else {"error": {}})
            return True
        self.requests += 1
        if self.drops > 0:
            self.drops -= 1
            await self._drop(writer, streamed=bool(body.get("stream")))
            return False
        prompts = body.get("prompt", "")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        answer = chat() if path.endswith(b"/chat/completions") else completion(prompts)
        if body.get("stream"):
            await self._stream(writer, answer)
        else:
            await self._send(writer, 200, answer)
        return True

    async def _drop(self, writer: asyncio.StreamWriter, *, streamed: bool) -> None:
        if self.how == "reset":  # linger 0: close() sends RST instead of FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.how == "half":
            if streamed:
                writer.write(_STREAM_HEAD + _chunk(b'data: {"id":"x","choices":[{"index":0,'
                                                   b'"text":" half"}]}\n\n'))  # fmt: skip
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
            await writer.drain()
        writer.close()

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: Json) -> None:
        data = json.dumps(body).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, len(data))
            + data
        )
        await writer.drain()

    async def _stream(self, writer: asyncio.StreamWriter, answer: Json) -> None:
        writer.write(_STREAM_HEAD)
        for choice in answer["choices"]:
            event = {**answer, "choices": [choice]}
            event.pop("usage", None)
            writer.write(_chunk(b"data: " + json.dumps(event).encode() + b"\n\n"))
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self._writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"

"""Warm-ups resend a request the server dropped before answering (#14 item 6), and nothing else.

The fake here is a bare TCP server, so the drop is a real one: it reads the request and closes
the socket without a byte of answer (httpx: "Server disconnected without sending a response"),
as llama-server did to one of 05's 32 concurrent warm-ups about one run in six."""

import asyncio
import json

import pytest

from inferlab.errors import ConnectionLostError, NoResponseError
from inferlab.wire import AsyncClient, warm_up
from inferlab.wire import warmup as warm_up_module

pytestmark = pytest.mark.anyio

ANSWER = {
    "id": "x",
    "object": "text_completion",
    "model": "fake",
    "choices": [{"index": 0, "text": " hi", "finish_reason": "length"}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
}


class DroppingServer:
    """Answers completions, except that the first `drops` connections are closed unanswered;
    with `half=True` those send the status line and headers, then close mid-body."""

    def __init__(self, drops: int, *, half: bool = False):
        self.drops, self.half, self.requests = drops, half, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        self.requests += 1
        body = json.dumps(ANSWER).encode()
        if self.drops > 0:
            self.drops -= 1
            if self.half:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{" % len(body))
                await writer.drain()
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.setattr(warm_up_module, "FIRST_PAUSE_S", 0.0)


async def test_a_request_dropped_before_any_answer_is_a_no_response_error():
    fake = DroppingServer(drops=1)
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(NoResponseError):
            await client.complete("x", max_tokens=1)
        assert (await client.complete("x", max_tokens=1)).text == " hi"


async def test_a_warm_up_resends_what_was_dropped_unanswered():
    fake = DroppingServer(drops=2)
    async with fake as url, AsyncClient(url, model="fake") as client:
        assert await warm_up(client, count=3) == 2
    assert fake.requests == 5  # three warm-ups, and the two dropped ones again


async def test_a_warm_up_that_keeps_being_dropped_says_what_to_check():
    fake = DroppingServer(drops=100)
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(NoResponseError, match="inferlab doctor --base-url"):
            await warm_up(client, attempts=3)
    assert fake.requests == 3


async def test_a_connection_that_broke_mid_answer_is_not_resent():
    """Headers came back: the server saw the request, so this is no longer a free retry."""
    fake = DroppingServer(drops=1, half=True)
    async with fake as url, AsyncClient(url, model="fake") as client:
        with pytest.raises(ConnectionLostError) as caught:
            await warm_up(client)
    assert not isinstance(caught.value, NoResponseError)
    assert fake.requests == 1

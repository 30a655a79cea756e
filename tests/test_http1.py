"""The lean HTTP/1.1 transport under the upstream client and AsyncClient, against a raw
asyncio server whose every byte the test chooses (keep-alive, chunks, early hang-ups)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from inferlab.wire._http1 import Http1Transport

pytestmark = pytest.mark.anyio

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the transport is asyncio's, as uvicorn's loop is


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class RawServer:
    """Answers each request on each connection with `reply`; counts connections."""

    def __init__(self, reply: Reply):
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                self.requests.append(await _read_request(reader))
                await self.reply(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _serve(reply: Reply) -> AsyncIterator[tuple[RawServer, str]]:
    raw = RawServer(reply)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield raw, f"http://127.0.0.1:{port}"


def _ok(body: bytes) -> Reply:
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    return reply


async def test_one_connection_serves_requests_one_after_another():
    async for raw, url in _serve(_ok(b'{"ok": true}')):
        async with httpx.AsyncClient(transport=Http1Transport()) as http:
            for i in range(3):
                response = await http.post(url + "/v1/x", json={"i": i})
                assert response.json() == {"ok": True}
        assert raw.connections == 1
        assert raw.requests[2].endswith(b'{"i":2}')
        assert raw.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")


async def test_a_chunked_body_arrives_piece_by_piece():
    """Each chunk is read as it comes: the second is sent only once the first was read."""
    first_read = asyncio.Event()

    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"6\r\ndata 1\r\n")
        await writer.drain()
        await first_read.wait()
        writer.write(b"6\r\ndata 2\r\n0\r\n\r\n")
        await writer.drain()

    async for _, url in _serve(reply):
        async with httpx.AsyncClient(transport=Http1Transport()) as http:
            async with http.stream("GET", url + "/") as response:
                pieces = []
                async for piece in response.aiter_bytes():
                    pieces.append(piece)
                    first_read.set()
        assert b"".join(pieces) == b"data 1data 2"


async def test_a_server_that_hangs_up_mid_body_is_a_protocol_error_and_the_next_call_works():
    calls = 0

    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()
            writer.close()
            raise ConnectionError("hung up on purpose")
        await _ok(b"whole")(_, writer)

    async for raw, url in _serve(reply):
        async with httpx.AsyncClient(transport=Http1Transport()) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(url + "/")
            assert (await http.get(url + "/")).content == b"whole"
        assert raw.connections == 2  # the broken one was not reused


async def test_a_silent_server_is_a_read_timeout():
    silence = asyncio.Event()

    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await silence.wait()

    async for _, url in _serve(reply):
        async with httpx.AsyncClient(transport=Http1Transport(), timeout=0.05) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(url + "/")
        silence.set()


async def test_past_max_connections_requests_wait_in_line_and_all_finish():
    """Ten requests, two connections: eight wait (visibly), none is lost, two sockets."""
    go = asyncio.Event()
    arrived = 0

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            go.set()
        await go.wait()
        await _ok(b"done")(reader, writer)

    async for raw, url in _serve(reply):
        transport = Http1Transport(max_connections=2)
        async with httpx.AsyncClient(transport=transport) as http:
            calls = [asyncio.ensure_future(http.get(url + "/")) for _ in range(10)]
            await go.wait()
            assert transport.waiting == 8
            answers = await asyncio.gather(*calls)
        assert [a.content for a in answers] == [b"done"] * 10
        assert raw.connections == 2


async def test_nothing_listening_is_a_connect_error():
    async for _, url in _serve(_ok(b"")):
        closed_port_url = url
    async with httpx.AsyncClient(transport=Http1Transport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(closed_port_url + "/")


def test_max_connections_below_one_is_refused():
    with pytest.raises(ValueError, match="max_connections must be >= 1, got 0"):
        Http1Transport(max_connections=0)


async def test_a_no_content_answer_ends_at_its_headers():
    async def reply(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async for raw, url in _serve(reply):
        async with httpx.AsyncClient(transport=Http1Transport()) as http:
            assert (await http.delete(url + "/")).status_code == 204
            assert (await http.delete(url + "/")).status_code == 204
        assert raw.connections == 1  # a 204 has no body: its connection goes on


async def test_a_newcomer_does_not_overtake_a_request_already_waiting():
    """One connection: A holds it and B waits. C is sent the moment A's answer is read, and
    runs before B wakes: it queues behind B. (It took the connection, and B, woken for
    nothing, went to the back of the line: under steady load, again and again.)"""
    order: list[str] = []
    late: list[asyncio.Future[None]] = []

    async def get(http: httpx.AsyncClient, url: str, name: str) -> None:
        await http.get(url + "/")
        order.append(name)
        if name == "A":
            late.append(asyncio.ensure_future(get(http, url, "C")))

    async for _, url in _serve(_ok(b"ok")):
        async with httpx.AsyncClient(transport=Http1Transport(max_connections=1)) as http:
            first = asyncio.ensure_future(get(http, url, "A"))
            await asyncio.sleep(0)  # A takes the connection; B arrives after it
            await asyncio.gather(first, get(http, url, "B"))
            await asyncio.gather(*late)
    assert order == ["A", "B", "C"]


async def test_a_response_read_after_the_transport_closed_closes_its_connection():
    """A connection given back after aclose() is closed, not parked where nothing closes it."""
    async for _raw, url in _serve(_ok(b"x" * 100_000)):
        transport = Http1Transport()
        http = httpx.AsyncClient(transport=transport)
        async with http.stream("POST", url + "/v1/x", json={}) as response:
            await transport.aclose()  # while the body is still being read
            assert len(await response.aread()) == 100_000
        assert transport._open == 0 and not any(transport._idle.values())

"""A lean HTTP/1.1 transport for httpx: plain asyncio sockets, httptools' parser, a simple pool.

    http = httpx.AsyncClient(transport=Http1Transport())   # the same httpx API as ever

Why not httpx's own transport? It is built for every case (HTTP/2, TLS, proxies, trio), and
at the rates this course measures its cost is the client's, not the server's: in a profile
of the proxy, httpcore, anyio and h11 took about 30% of its CPU for each request it forwarded,
and its pool looks at every queued request and every connection each time one finishes, so
with more requests in flight than connections it slows down as the queue grows.

This one does less, on purpose: plain `http://` only (anything else goes to httpx's default
transport), one request at a time per connection (no pipelining), and a pool that opens a
connection for each request in flight up to `max_connections`; past that, requests wait in
order, one queue, O(1) each. Idle connections are kept up to `keepalive_expiry_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

_KEEP_AT_MOST_IDLE = 1000  # idle connections kept per (host, port), most recent first
_PAUSE_AT_BYTES = 1 << 20  # stop reading from the socket while this much body is unread

# A request extension: {FRESH_CONNECTION: True} opens a new connection instead of reusing an
# idle one (a request sent again after a drop must not land on another stale connection).
FRESH_CONNECTION = "inferlab.fresh_connection"


class DroppedBeforeResponse(httpx.RemoteProtocolError):
    """The connection closed (or was reset) before a single byte of the response came back:
    the server may never have seen the request. See resend.py for who may send it again."""


class _Connection(asyncio.Protocol):
    """One TCP connection to a server: it sends a request, then parses the response as its
    bytes arrive (httptools calls the `on_*` methods), and wakes whoever waits for more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.idle_since_s = 0.0
        self._begin()

    def _begin(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.keep_alive = False
        self.complete = False
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.error: Exception | None = None
        self.received_any = False  # a byte of this response arrived (then: never resend it)

    # --- asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"malformed response: {exc}")
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.headers_done and not self.complete and not self._has_length():
            self.complete = True  # a body that ends when the connection does (no length)
        elif not self.received_any and self.error is None:
            # An idle connection lost between requests says this too, harmlessly: nobody
            # reads it, and the pool never reuses a connection whose transport is gone.
            self.error = DroppedBeforeResponse(
                f"Server disconnected without sending a response ({exc!r})"
            )
        elif not self.complete and self.error is None:
            self.error = httpx.RemoteProtocolError(
                "the server closed the connection before the response was complete"
            )
        self._transport = None
        self._wake()

    # --- httptools' side
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # subtle: ask now. Once the message is complete the parser has moved on to the next
        # one, and says False whatever this one's headers were.
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT_BYTES and self._transport is not None:
            self._transport.pause_reading()  # a slow reader must not fill our memory
            self._paused = True

    def on_message_complete(self) -> None:
        self.complete = True

    # --- the request's side
    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, data: bytes) -> None:
        if self._transport is None:  # it closed while idle: nothing was sent, nothing came
            raise DroppedBeforeResponse("the connection closed before the request was sent")
        self._transport.write(data)

    async def wait(self, timeout_s: float | None) -> None:
        """Until something new arrives (or the connection ends); httpx.ReadTimeout if nothing
        does within `timeout_s`. One timer handle instead of a task per wait."""
        if self.error is not None:
            raise self.error
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = None
        if timeout_s is not None:
            timer = self._loop.call_later(timeout_s, _time_out, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if self.error is not None:
            raise self.error

    def take_body(self) -> list[bytes]:
        chunks = list(self.body)
        self.body.clear()
        self.buffered = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunks

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.usable

    def reset(self) -> None:
        self._begin()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _has_length(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("no data from the server in time"))


class _Body(httpx.AsyncByteStream):
    """A response's body as it arrives; closing it gives the connection back when the whole
    response was read, and closes it when not (its next bytes would belong to this one)."""

    def __init__(
        self, pool: Http1Transport, key: tuple[str, int], conn: _Connection, read_s: float | None
    ):
        self._pool, self._key, self._conn, self._read_s = pool, key, conn, read_s
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            # subtle: check for body before waiting, every time round. Bytes may arrive while
            # we are suspended at `yield`, and they wake nobody: nobody was waiting then.
            if conn.body:
                for chunk in conn.take_body():
                    yield chunk
            elif conn.complete:
                return
            else:
                await conn.wait(self._read_s)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool._release(self._key, self._conn)


class Http1Transport(httpx.AsyncBaseTransport):
    """httpx's transport interface over `_Connection`s; see the module docstring."""

    # Idle connections are dropped after 2 s: well before the 5 s after which uvicorn (vLLM's
    # server) and llama.cpp's server close theirs, so a request is never sent on a connection
    # the server is closing at that moment (at 5 s, both sides would race).
    def __init__(self, *, max_connections: int = 1000, keepalive_expiry_s: float = 2.0) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.keepalive_expiry_s = keepalive_expiry_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._open = 0  # connections in use or idle
        self._queue: deque[asyncio.Future[None]] = deque()  # requests waiting for a slot
        self._woken = 0  # of those, woken for a slot and not yet running again
        self._closed = False  # aclose() was called: connections given back are closed
        self._fallback: httpx.AsyncHTTPTransport | None = None

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection (only ever more than 0 past max_connections)."""
        return len(self._queue)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport()
            return await self._fallback.handle_async_request(request)
        timeouts = request.extensions.get("timeout", {})
        key = (url.host, url.port or 80)
        conn = await self._acquire(
            key, timeouts, fresh=bool(request.extensions.get(FRESH_CONNECTION))
        )
        try:
            conn.send(await _encode(request))
            while not conn.headers_done:
                await conn.wait(timeouts.get("read"))
        except BaseException:
            self._discard(conn)  # cancelled or broken mid-request: never reuse it
            raise
        status = conn._parser.get_status_code()
        if request.method == "HEAD":
            # No body follows, whatever the headers say; but the parser, which never saw the
            # request, would wait for one: so this connection is not used again.
            conn.complete, conn.keep_alive = True, False
        return httpx.Response(
            status,
            headers=conn.headers,
            stream=_Body(self, key, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    # ---------------------------------------------------------------------------------------
    # The pool

    async def _acquire(
        self, key: tuple[str, int], timeouts: dict[str, Any], *, fresh: bool = False
    ) -> _Connection:
        woken = False
        while True:
            # subtle: first come, first served. A connection given back wakes the first in
            # line, who runs a moment later; a newcomer that ran in between and took it would
            # send the woken one to the back of the queue, again and again under load. So a
            # newcomer queues behind anyone waiting or woken (unless there is room for all),
            # and a woken one that still finds nothing keeps its place at the front.
            if woken or self._room() > self._woken + len(self._queue):
                conn = None if fresh else self._idle_connection(key)
                if conn is not None:
                    return conn
                if self._open >= self.max_connections:
                    self._close_one_idle()  # an idle connection to another server gives way
                if self._open < self.max_connections:
                    break
            await self._wait_for_slot(timeouts.get("pool"), first=woken)
            woken = True
        self._open += 1
        try:
            return await self._connect(key, timeouts.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake_next()
            raise

    def _room(self) -> int:
        """Connections a request could have now: slots never opened, and idle ones."""
        return self.max_connections - self._open + sum(len(idle) for idle in self._idle.values())

    def _idle_connection(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now_s = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closing
            fresh = now_s - conn.idle_since_s < self.keepalive_expiry_s
            # subtle: an idle connection should hear nothing; one that did (an error, or a
            # response nobody asked for) cannot be trusted with the next request.
            if fresh and conn.usable and conn.error is None and not conn.headers:
                return conn
            self._discard(conn)
        return None

    def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                self._discard(idle.pop(0))
                return

    async def _wait_for_slot(self, timeout_s: float | None, *, first: bool = False) -> None:
        slot = asyncio.get_running_loop().create_future()
        if first:
            self._queue.appendleft(slot)
        else:
            self._queue.append(slot)
        try:
            await asyncio.wait_for(slot, timeout_s)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no connection free in time") from None
        except BaseException:
            if slot.done() and not slot.cancelled():
                self._woken -= 1
                self._wake_next()  # we were woken, then cancelled: pass the turn on
            raise
        else:
            self._woken -= 1  # running again: our turn
        finally:
            if slot in self._queue:
                self._queue.remove(slot)

    async def _connect(self, key: tuple[str, int], timeout_s: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), *key), timeout_s
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {key[0]}:{key[1]} in time") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        return conn

    def _release(self, key: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        # A closed transport keeps nothing: a response read to its end after aclose() would
        # otherwise park its connection where nothing will ever close it.
        if self._closed or not conn.reusable() or len(idle) >= _KEEP_AT_MOST_IDLE:
            self._discard(conn)
            return
        conn.reset()
        conn.idle_since_s = time.monotonic()
        idle.append(conn)
        self._wake_next()

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        while self._queue:
            slot = self._queue.popleft()
            if not slot.done():
                slot.set_result(None)
                self._woken += 1
                return

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
            self._open -= len(idle)
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()


async def _encode(request: httpx.Request) -> bytes:
    """The request as bytes: its line, its headers (httpx has set Host and Content-Length),
    and its body, in one buffer so that it leaves in one write."""
    target = request.url.raw_path
    lines = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    if "transfer-encoding" in request.headers:  # a streamed body: send it in chunks
        async for chunk in request.stream:  # type: ignore[union-attr]
            lines += [f"{len(chunk):x}\r\n".encode(), chunk, b"\r\n"]
        lines.append(b"0\r\n\r\n")
    else:
        lines.append(await request.aread())
    return b"".join(lines)

"""HTTP limits uvicorn does not set: header size and count, head and body timeouts, a connection
cap.

uvicorn's fast parser (httptools) takes a header of any size (a 300 MB one was accepted, and
parsing it took super-linear time), any number of headers, and as long as a client likes to send
them (slowloris: a byte every minute holds a connection for ever); and it accepts connections
until the process runs out of file descriptors. A body may dribble in the same way once its head
is in. This subclass of its protocol adds the limits of `HttpLimits`; each refusal is an
answer in OpenAI's error shape, then a closed connection, before the app sees the request (a
late body: before the app has all of it; a refused request that follows one still being
answered on the same connection: just after that answer, never inside it):

    431  request line and headers over max_header_bytes, or more than max_header_count headers
    408  the head did not arrive within header_timeout_s of its first byte
    408  the body did not arrive within body_timeout_s of the head (a body that dribbles)
    400  not HTTP at all (uvicorn's own refusal, in OpenAI's shape here)
    ---  a connection past max_connections is closed at once, unread: descriptors stay bounded
    ---  a connection silent for idle_timeout_s is closed, a new one as a kept-alive one

What it leaves out: HTTP/2 (uvicorn serves HTTP/1.1 here). h11, uvicorn's other parser,
has a buffer limit of its own (`h11_max_incomplete_event_size`) but is pure Python; the course
keeps httptools for its speed (pyproject.toml says why) and adds the limits here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ._http import error_body
from ._settings import HttpLimits

# After an error answer, how long to go on reading (and dropping) what the client still sends.
# subtle: closing a socket with unread bytes in it sends a TCP reset, and a reset can destroy
# our answer before the client reads it. So we half-close (the client sees the end of our answer)
# and drain until it closes its side or this passes (Apache's "lingering close").
LINGER_S = 2.0
_READ_ONCE_MORE_S = 0.05
_REFUSALS_LOGGED_EVERY = 1000  # a flood of connections must not become a flood of log lines

logger = logging.getLogger("uvicorn.error")


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing; `send_400_response` then answers."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits`; `limited_http_protocol(...)` sets them."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    refused_connections: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_started = False  # a byte of the current request's head has arrived
        self._head_bytes = 0  # bytes received while its head was still incomplete
        self._refusal: tuple[int, str] | None = None
        self._draining = False  # answered with an error (or about to); dropping what still comes
        self._began_in_chunk = False  # a request's head began in the chunk being parsed
        self._deferred: tuple[int, str] | None = None  # a refusal waiting for the answer before

    # --- the connection cap, and the clock for the first request's head ------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            LimitedHttpProtocol.refused_connections += 1
            if LimitedHttpProtocol.refused_connections % _REFUSALS_LOGGED_EVERY == 1:
                logger.warning(
                    "more than %d connections open: closing new ones (%d so far)",
                    self.limits.max_connections,
                    LimitedHttpProtocol.refused_connections,
                )
            transport.close()  # connection_lost follows, and takes it off the count
            return
        # The head timeout starts at a request's first byte: clients open connections ahead of
        # their requests. But a connection that never sends a byte must not stay for ever (a
        # client holding max_connections silent sockets would lock everyone out): it gets the
        # idle timeout of a kept-alive connection, uvicorn's own timer, which its first byte
        # cancels.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._deferred = None
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    # --- counting the head as it arrives ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        self._began_in_chunk = False
        super().data_received(data)  # the parser calls on_header, on_headers_complete, ...
        if self._head_started and not self._draining and not self.transport.is_closing():
            # The head is still incomplete. If it began in an earlier chunk, all of `data` was
            # head. subtle: if it began in this one, `data` may also hold the end of the request
            # before it (a keep-alive client's body, pipelined): count only what was parsed of
            # this head. (A chunk in which the head completed is measured in on_headers_complete.)
            if self._began_in_chunk:
                self._head_bytes = self._parsed_head_bytes()
            else:
                self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer_error(431, self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started, self._head_bytes, self._began_in_chunk = True, 0, True
        self._stop_head_timer()  # the idle clock of a new connection, if it still runs
        self._start_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        if len(self.headers) > self.limits.max_header_count:
            self._refusal = (431, f"more than {self.limits.max_header_count} request headers")
            raise _HeadRefused

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._head_started = False
        if self._parsed_head_bytes() > self.limits.max_header_bytes:
            self._refusal = (431, self._too_large())
            raise _HeadRefused
        super().on_headers_complete()
        # The body's own clock. A request without one completes in this same parse, which
        # stops the timer at once: a timer handle made and cancelled, per request.
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()

    def _parsed_head_bytes(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _too_large(self) -> str:
        return f"request line and headers larger than {self.limits.max_header_bytes} bytes"

    # --- the header timeout ---------------------------------------------------------------

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        # subtle: uvloop (libuv) runs due timers before it reads the sockets, so after a stall
        # of the whole loop this can fire with the rest of the head already waiting, unread.
        # Look again just after the next read, which cancels this timer if the head completed.
        self._head_timer = self.loop.call_later(_READ_ONCE_MORE_S, self._head_too_late)

    def _head_too_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        seconds = f"{self.limits.header_timeout_s:g}"
        self._answer_error(408, f"the request's headers did not arrive within {seconds} s")

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or (self.cycle and self.cycle.response_started):
            return  # gone already, or answered without waiting for the body: nothing to refuse
        seconds = f"{self.limits.body_timeout_s:g}"
        # The app is waiting for the rest of the body; our answer closes the connection, and
        # the app then reads a disconnect and ends.
        self._answer_error(408, f"the request's body did not arrive within {seconds} s")

    # --- answers ----------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when parsing fails: our own refusal, or a request that is not
        HTTP. Both leave in OpenAI's shape."""
        status, message = self._refusal or (400, msg)
        self._answer_error(status, message)

    def on_response_complete(self) -> None:
        if self._deferred is None or self.pipeline:
            super().on_response_complete()  # (the next pipelined request starts, if any)
            return
        self.server_state.total_requests += 1
        status, message = self._deferred
        self._deferred = None
        self._answer_error(status, message)

    def _answer_error(self, status: int, message: str) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        if self.transport.is_closing():
            return
        # A refused head has no cycle yet: `self.cycle` is the request before it, if any. A
        # cycle whose body is still coming is the one refused (a late body, a malformed
        # chunk): it is answered now, or its app would wait for that body for ever.
        cycle = self.cycle
        body_coming = cycle is not None and cycle.more_body
        unanswered = cycle is not None and not cycle.response_complete
        if not body_coming and (unanswered or self.pipeline):
            # subtle: an earlier request on this connection (keep-alive, pipelined) is still
            # being answered. Writing now would cut into its answer: refuse after it instead
            # (on_response_complete), and read nothing more meanwhile.
            self._deferred, self._draining = (status, message), True
            return
        logger.warning("refused a request with %d: %s", status, message)
        body = json.dumps(error_body(message, status)).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:  # server, date
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads our answer, then the end; its own
            # end (eof_received returns None) or LINGER_S closes the connection
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def limited_http_protocol(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """The protocol class uvicorn builds for each connection, with `limits`:
    `uvicorn.Config(app, http=limited_http_protocol(HttpLimits(max_connections=64)))`."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits.http_limits})

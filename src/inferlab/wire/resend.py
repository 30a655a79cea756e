"""Sending a request once more when the server dropped it before answering a single byte.

    response = await resend_if_dropped(lambda extensions: http.post(url, json=body,
                                                                    extensions=extensions))

Servers close keep-alive connections when they like (llama.cpp and uvicorn after 5 s idle;
llama-server also drops some of many connections opened at once), and a request sent on one
just then comes back as "Server disconnected without sending a response", or as a reset. If not
a byte of the response arrived, the request is sent once more, on a new connection. Why that is
safe for a completion: it has no side effect but its cost, and the server that dropped it
before answering has at worst computed one answer nobody will read (a waste, never a double
charge to anyone, since usage is counted from the answer we receive). Never resent: a request
of which any byte of the response arrived (the server answered; the rest is lost), and so never
a stream that has started. Twice dropped is the server's problem, not a race: it is raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from ._http1 import FRESH_CONNECTION, DroppedBeforeResponse

__all__ = ["FRESH_CONNECTION", "DroppedBeforeResponse", "dropped_unanswered", "resend_if_dropped"]

T = TypeVar("T")

# httpcore's words (httpx's default transport) for the same event: it says them only while
# its parser still waits for the head of the response, so no usable byte of it had arrived.
_HTTPCORE_NO_RESPONSE = "Server disconnected without sending a response"


def dropped_unanswered(exc: BaseException) -> bool:
    """Whether `exc` says the connection ended before any of the response came back.

    dropped_unanswered(DroppedBeforeResponse("...")) -> True
    dropped_unanswered(httpx.RemoteProtocolError("incomplete chunked read")) -> False
    """
    if isinstance(exc, DroppedBeforeResponse):
        return True  # our transport counts the bytes, so it knows
    return isinstance(exc, httpx.RemoteProtocolError) and _HTTPCORE_NO_RESPONSE in str(exc)


async def resend_if_dropped(
    send: Callable[[dict[str, Any]], Awaitable[T]],
    *,
    on_resend: Callable[[], None] | None = None,
) -> T:
    """`send(extensions)`, and once more on a fresh connection if the first was dropped
    unanswered; `on_resend()` is called before the second try (a metric counts them).
    `send` may return at the response's head (a stream opened) or after its body (a plain
    request): either way, what fails once a byte has arrived is raised, never resent."""
    try:
        return await send({})
    except httpx.TransportError as exc:
        if not dropped_unanswered(exc):
            raise
    if on_resend is not None:
        on_resend()
    try:
        return await send({FRESH_CONNECTION: True})
    except httpx.TransportError as exc:
        if not dropped_unanswered(exc):
            raise
        raise DroppedBeforeResponse(
            "the server closed the connection without answering, twice (the second time on a "
            f"new connection): it may be restarting or out of connection slots ({exc})"
        ) from exc

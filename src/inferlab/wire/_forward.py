"""One request passed through as it is, for what cannot be batched (chat completions): its JSON
reply, or its stream's events piped into the caller's queue. Used by `Upstream.forward`.
A request dropped before any answer is sent once more (resend.py); a stream that has begun,
never.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from ..errors import UpstreamError
from ._replies import Reply, error_reply, upstream_errors
from .resend import resend_if_dropped

Json = dict[str, Any]


async def forward(
    http: httpx.AsyncClient,
    url: str,
    body: Json,
    events: asyncio.Queue[str | None],
    *,
    on_resend: Callable[[], None],
) -> Reply:
    """POST `body` to `url`: a JSON reply, or (stream) Reply(200) once its events are queued."""
    stream = bool(body.get("stream"))

    async def send(extensions: Json) -> httpx.Response:
        request = http.build_request("POST", url, json=body, extensions=extensions)
        return await http.send(request, stream=stream)  # a stream: returns at its head

    with upstream_errors():
        response = await resend_if_dropped(send, on_resend=on_resend)
        try:
            if response.status_code >= 500:
                raise UpstreamError(f"the upstream failed: {response.status_code}")
            if response.status_code >= 400:
                return error_reply(response, await response.aread())
            if not stream:
                return Reply(200, response.json())
            async for line in response.aiter_lines():
                if line.strip():
                    events.put_nowait(line.strip() + "\n\n")
        finally:
            await response.aclose()
    events.put_nowait(None)  # the end of this caller's stream
    return Reply(200)

"""What the proxy's upstream client answers each caller: a status and a body, or a stream's
events, and how an upstream's failures are put in a caller's terms (a 502 or 504, an error
event inside a stream whose 200 is already sent). Shared by `upstream.py` and the job workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import UpstreamError
from .sse import stream_error_status

Json = dict[str, Any]


@dataclass
class Reply:
    """What one caller gets back: a status and a JSON body (None once a stream was sent)."""

    status: int
    body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)


@contextmanager
def upstream_errors() -> Iterator[None]:
    """Say what went wrong with the upstream in the terms a caller needs: 504 or 502."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"the upstream did not answer in time ({exc!r})", status=504) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the upstream could not be reached ({exc!r})") from exc


def error_reply(response: httpx.Response, content: bytes) -> Reply:
    try:
        body = json.loads(content)
    except ValueError:
        body = {"error": {"message": content.decode(errors="replace")[:500], "type": "upstream"}}
    headers = (
        {"retry-after": response.headers["retry-after"]}
        if "retry-after" in response.headers
        else {}
    )
    return Reply(response.status_code, body if isinstance(body, dict) else {"error": body}, headers)


def stream_error_reply(payload: Json) -> Reply:
    """An error sent inside a 200 stream keeps the server's own code: a 400 is the caller's."""
    error = payload.get("error")
    status = stream_error_status(payload)
    body = error if isinstance(error, dict) else {"message": str(error), "type": "upstream_error"}
    return Reply(status, {"error": body})


def failure_reply(error: BaseException) -> Reply:
    status = error.status if isinstance(error, UpstreamError) else 502
    return Reply(status, {"error": {"message": str(error), "type": "upstream_error"}})


def in_stream_error(reply: Reply) -> Json:
    """The error event for a stream whose 200 is sent: its status travels as `code`, as
    llama.cpp sends it, so the client can still tell a 502 from its own 400."""
    error = (reply.body or {}).get("error") or {}
    return {"error": {**error, "code": reply.status}}


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps(...) makes one a call


def sse_event(payload: Json | str) -> str:
    data = payload if isinstance(payload, str) else _COMPACT.encode(payload)
    return f"data: {data}\n\n"

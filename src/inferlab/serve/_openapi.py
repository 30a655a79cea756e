"""What the OpenAPI documents of inferlab's servers say beyond FastAPI's defaults: the truth.

FastAPI documents every validation failure as a 422 in its own shape; our servers answer 400
in OpenAI's (`_http.install_error_handlers`), so every operation documents that instead, and
any other error with the same body. Streams and /metrics declare their real content types.
`tests/test_schema_fuzz.py` holds each server to its document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error body, as the OpenAPI document describes every error of every server."""

    model_config = ConfigDict(extra="forbid")
    error: _ErrorDetail


# Every operation documents these: a refused request is a 400 (never FastAPI's 422), and any
# other error has the same shape. Declaring "default" also stops FastAPI adding its 422.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The request was refused (OpenAI's shape)"},
    "default": {"model": ErrorResponse, "description": "Any other error (OpenAI's shape)"},
}
SSE = "text/event-stream"
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


def sse_events(description: str) -> dict[str, Any]:
    """A `text/event-stream` content entry: the schema is one event's, as tools read a stream."""
    event = {
        "type": "object",
        "description": description,
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
        "required": ["data"],
    }
    return {SSE: {"schema": event}}


def json_or_stream(description: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that answers JSON, or Server-Sent Events when `stream: true`."""
    stream = sse_events("`data: {chunk}` events (an error's body, if one broke it), then [DONE]")
    return {200: {"description": description, "content": {"application/json": {}, **stream}}}

"""The OpenAI wire format, read tolerantly: SSE lines, choice texts and error bodies.

Shared by the clients and the proxy. Real servers differ in small ways (llama.cpp's `data: null`
lines, comment lines, bodies that are HTML pages from a gateway); none of them is fatal here.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import APIStatusError

DONE = "[DONE]"


def read_sse_line(line: str) -> dict[str, Any] | str | None:
    """The JSON object a `data:` line carries, DONE at the end of a stream, None otherwise.

    'data: {"a": 1}' -> {"a": 1};  'data: [DONE]' -> DONE;  'data: null', ': ping', '' -> None
    """
    line = line.strip()
    if not line.startswith("data:"):
        return None  # blank separators, comments, event:/id: lines
    data = line[len("data:") :].strip()
    if data == DONE:
        return DONE
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def choice_text(choice: dict[str, Any]) -> str:
    if "text" in choice:  # completions
        return choice.get("text") or ""
    part = choice.get("delta") or choice.get("message") or {}
    return (part.get("content") or "") if isinstance(part, dict) else ""


def api_error(body: Any, status_code: int) -> APIStatusError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return APIStatusError(
            str(error.get("message", "")),
            status_code=status_code,
            type=error.get("type"),
            code=error.get("code"),
            param=error.get("param"),
        )
    return APIStatusError(str(error or body)[:500], status_code=status_code)


def error_from_response(status_code: int, content: bytes) -> APIStatusError:
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = {"error": content.decode(errors="replace")[:500] or f"HTTP {status_code}"}
    return api_error(body, status_code)


def stream_error_status(payload: dict[str, Any]) -> int:
    """The HTTP status an error sent inside a stream stands for: its own code, else 500.

    {"error": {"code": 400}} -> 400;  {"error": {"code": "bad"}} -> 500
    """
    error = payload.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code <= 599 else 500

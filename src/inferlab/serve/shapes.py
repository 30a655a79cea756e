"""The OpenAI API's response shapes: a completion, a chat completion, and their stream chunks.

Two shapes, one difference: a text completion's choice carries `text`, a chat completion's a
`message` (or, streamed, a `delta` that opens with the assistant's role). Usage counts a prompt
once however many samples it has, as vLLM does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .responder import _Choice


def usage(choices: list[_Choice], completion_tokens: int) -> dict[str, int]:
    # A prompt is prefilled once however many samples it has, so count it once.
    prompt_tokens = sum(choice.prompt_tokens for choice in choices if choice.sample == 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def timing_headers(engine_timing: dict[str, Any] | None) -> dict[str, str]:
    """The engine's account as headers, in milliseconds, as Hugging Face's TGI sends them."""
    if not engine_timing:
        return {}
    tokens = engine_timing["output_tokens"]
    # TGI's inference time: after the queue, so also after the API server's work before it
    waited_s = engine_timing["queue_s"] + engine_timing.get("api_server_s", 0.0)
    inference_s = engine_timing["e2e_latency_s"] - waited_s
    decode_s = engine_timing["e2e_latency_s"] - engine_timing["ttft_s"]
    return {
        "x-queue-time": f"{engine_timing['queue_s'] * 1000:.3f}",
        "x-inference-time": f"{inference_s * 1000:.3f}",
        "x-time-per-token": f"{decode_s / max(1, tokens - 1) * 1000:.3f}",
        "x-generated-tokens": str(tokens),
    }


# One encoder, made once: json.dumps with any option set builds a new JSONEncoder per call,
# and this runs once per token per stream.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else _COMPACT.encode(payload)
    return f"data: {data}\n\n"


class TokenChunks:
    """The SSE event of an ordinary token (not a choice's first, not its last) as a template.

    Such events differ only in their text, and a stream sends one per token: a thousand
    streams, tens of thousands a second. Encoding the whole chunk each time was a tenth of the
    server's CPU in a profile; here it is encoded once per choice, with a marker where the text
    goes, and each token costs one string escape and a join. The bytes are the same as
    `sse(chunk)` would give (tests/test_streaming_chunks.py holds them to it).
    """

    _MARK = "\x00text\x00"

    def __init__(self, head: dict[str, Any], shape: Shape):
        self.head, self.shape = head, shape
        self._parts: dict[int, tuple[str, str]] = {}

    def event(self, index: int, text: str) -> str:
        parts = self._parts.get(index)
        if parts is None:
            chunk = {**self.head, "choices": [self.shape.delta(index, self._MARK, None, False)]}
            before, _, after = sse(chunk).partition(_COMPACT.encode(self._MARK))
            parts = self._parts[index] = (before, after)
        return parts[0] + _COMPACT.encode(text) + parts[1]


@dataclass(frozen=True)
class Shape:
    id_prefix: str
    object: str
    chunk_object: str
    chat: bool

    def choice(self, index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
        if self.chat:
            message = {"role": "assistant", "content": text}
            return {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

    def delta(
        self, index: int, text: str, finish_reason: str | None, first: bool
    ) -> dict[str, Any]:
        if not self.chat:
            return self.choice(index, text, finish_reason)
        delta: dict[str, str] = {"role": "assistant", "content": text} if first else {}
        if text and not first:
            delta["content"] = text
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


COMPLETION = Shape("cmpl-", "text_completion", "text_completion", chat=False)
CHAT = Shape("chatcmpl-", "chat.completion", "chat.completion.chunk", chat=True)
